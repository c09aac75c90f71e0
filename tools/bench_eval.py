"""The evaluation and export pieces of ``tools.benchmark`` (``--what=fid,nll,generate``) and the
PixelCNN sampler (``--what=pixelcnn_sampling``); each takes a ``tools.benchmark.Setup``."""

import tempfile

import keras
import tensorflow as tf

from tools.bench_common import synthetic_batch, time_calls


def bench_fid(setup, *, num_images: int, steps: int, repeats: int, warmup: int):
    """FID feature extraction (the evaluation's classifier features) of generated images."""
    from tfvae import evaluation  # local: evaluation pulls in the metric modules

    if len(setup.shape) != 3:
        return {"skipped": "vector data: FID uses the raw vectors"}
    classifier = evaluation.classifier_model(setup.shape, 10)
    extractor = keras.Model(classifier.inputs, classifier.get_layer("features").output)
    model = setup.model

    @tf.function
    def features(images):
        return extractor(images, training=False)

    @tf.function
    def generate_and_features(seed):
        del seed
        return extractor(model.generate(num_images), training=False)

    images = synthetic_batch(setup.config, setup.shape, num_images)
    timings = time_calls(
        {"features": features}, (images,), steps=steps, repeats=repeats, warmup=warmup
    )
    both = time_calls(
        {"generate + features": generate_and_features},
        (tf.constant(0),),
        steps=steps,
        repeats=repeats,
        warmup=warmup,
    )
    return {
        "num_images": num_images,
        "features_images_per_s": timings["features"].best * num_images,
        "generate_and_features_images_per_s": both["generate + features"].best * num_images,
    }


def bench_nll(setup, *, num_samples: int, chunk_size: int, repeats: int):
    """Importance-sampled NLL of one batch with K samples, as ``tfvae.evaluation`` runs it."""
    from tfvae import metrics
    from tfvae.evaluation.dpvae import nll_functions

    model = setup.model
    if not model.stochastic:
        return {"skipped": "deterministic encoder: no importance-sampled NLL"}
    x = setup.batch[: setup.batch_size]
    encode, log_likelihood = nll_functions(model)
    prior_log_prob = tf.function(model.prior.log_prob, reduce_retracing=True)  # as EvalContext

    def run(_):
        return metrics.importance_sampled_bounds(
            x,
            encode_fn=encode,
            log_likelihood_fn=log_likelihood,
            prior_log_prob_fn=prior_log_prob,
            num_samples=num_samples,
            chunk_size=chunk_size,
            seed=0,
        )["log_px"]

    timing = time_calls({"nll": run}, (None,), steps=1, repeats=repeats, warmup=1)["nll"]
    n = int(x.shape[0])
    return {
        "num_samples": num_samples,
        "chunk_size": chunk_size,
        "batch": n,
        "examples_per_s": timing.best * n,
        "seconds_per_batch": 1.0 / timing.best,
    }


def bench_generate(setup, *, savedmodel: str | None, steps: int, repeats: int, warmup):
    """The exported ``generate`` signature: a given SavedModel, or this model exported now."""
    from tfvae import export

    tmp = None
    if not savedmodel:
        tmp = tempfile.mkdtemp(prefix="tfvae_bench_export_")
        savedmodel = export.export_model(setup.model, tmp, "bench", data_shape=setup.shape)
    loaded = tf.saved_model.load(savedmodel)
    generate = loaded.signatures["generate"]
    n = setup.batch_size
    seeds = tf.range(n, dtype=tf.int64)
    timing = time_calls(
        {"generate": lambda s: generate(seed=s)},
        (seeds,),
        steps=steps,
        repeats=repeats,
        warmup=warmup,
    )["generate"]
    return {
        "savedmodel": savedmodel if tmp is None else "(this model, exported to a temp dir)",
        "batch": n,
        "calls_per_s": timing.best,
        "images_per_s": timing.best * n,
    }


def bench_pixelcnn_sampling(setup, *, num_images: int, repeats: int, reference: bool = True):
    """Images per second of a PixelCNN decoder's sampler (``PixelCNNDecoder``): the row-cached
    ``sample_with_uniforms`` and, with ``reference``, the full-pass-per-pixel
    ``sample_with_uniforms_reference`` of the same (z, u), taking turns round by round. One call
    samples ``num_images`` images; the first call (tracing) is untimed."""
    decoder = setup.model.decoder
    if not getattr(decoder, "autoregressive", False):
        return {"skipped": f"{decoder.name} is not autoregressive"}
    z = tf.random.normal([num_images, setup.model.latent_dim], seed=0)
    u = tf.random.uniform([num_images, *decoder.image_shape], seed=1)
    fns = {"row-cached": decoder.sample_with_uniforms}
    if reference:
        fns["reference"] = decoder.sample_with_uniforms_reference
    timings = time_calls(fns, (z, u), steps=1, repeats=repeats, warmup=1)
    out = {"num_images": num_images}
    for name, timing in timings.items():
        out[f"{name}_images_per_s"] = timing.best * num_images
        out[f"{name}_seconds_per_call"] = 1.0 / timing.best
    if reference:
        out["speedup"] = timings["row-cached"].best / timings["reference"].best
    return out
