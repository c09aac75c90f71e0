"""Tests for tfvae.explore and its latent map: the page in headless Chromium, the cache, errors.

Two models are trained once for the module: a dpVAE with a 2-D latent (``configs/dpvae.py``'s
smoke settings, trained a few hundred steps so its decoder draws more than a flat image) and a
VAE with a 4-D latent (drawn through PCA). The README's explorer command runs as written in a
folder holding them as ``runs/dpvae`` and ``runs/vae``; Chromium (Debian's ``chromium`` and
``chromium-driver``, installed by tools/setup.sh; Selenium never downloads a browser) opens the
page and every image it shows is compared, pixel by pixel, with what the exported SavedModel's
signature returns for the code the page sent.
"""

import concurrent.futures
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

from tfvae import experiment, explore, serve, trainer
from tfvae.config_loader import load_config
from tfvae.evaluation import latent_map

# Every test here needs the module's expensive fixture (seconds to minutes).
pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO}
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# The README's commands (.venv/bin/python is sys.executable here).
README_COMMAND = "python -m tfvae.explore --workdir=runs/dpvae --compare=runs/vae"
# What the issue asks for; the tests allow twice as much on this shared 2-core machine and
# report the measured numbers.
MAP_LOAD_BUDGET_MS, DECODE_BUDGET_MS = 3000, 50


def _train(config: str, workdir, *, steps: int, **overrides):
    """Trains ``config`` for ``steps`` at a learning rate high enough that the decoder draws
    distinct images (the smoke settings leave it flat)."""
    cfg = load_config(os.path.join(REPO, config))
    cfg.train.update(
        num_steps=steps,
        batch_size=32,
        log_every=steps,
        eval_every=steps,
        checkpoint_every=steps,
        image_every=steps,
    )
    cfg.optimizers.main.learning_rate = 3e-3
    for key, value in overrides.items():
        cfg.model[key] = value
    trainer.train_and_evaluate(cfg, str(workdir))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A folder with runs/dpvae (2-D, decoupled prior) and runs/vae (4-D, standard normal)."""
    root = tmp_path_factory.mktemp("explore")
    _train("configs/dpvae.py:smoke", root / "runs" / "dpvae", steps=100)
    _train("configs/vae.py:smoke", root / "runs" / "vae", steps=60, latent_dim=4)
    return root


def _start(cmd: list[str], cwd, log_path) -> tuple[subprocess.Popen, str]:
    """Starts an explorer; returns the process and its URL once it serves."""
    with open(log_path, "w") as stderr:
        proc = subprocess.Popen(
            cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=stderr, text=True, env=ENV
        )
    watchdog = threading.Timer(600, proc.kill)
    watchdog.start()
    try:
        for line in proc.stdout:
            if line.startswith("Explorer on "):
                return proc, line.split()[-1].rstrip("/")
    finally:
        watchdog.cancel()
    proc.wait()
    with open(log_path) as f:
        raise AssertionError(f"the explorer stopped (status {proc.returncode}):\n{f.read()}")


def _command(text: str) -> list[str]:
    words = text.split()
    return [sys.executable, *words[1:]]


@pytest.fixture(scope="module")
def site(runs, tmp_path_factory):
    """The README's command, running (on its default port, 8080): its URL."""
    log = tmp_path_factory.mktemp("explore_log") / "explore.log"
    proc, url = _start(_command(README_COMMAND), runs, log)
    assert url == "http://127.0.0.1:8080"
    yield url
    proc.terminate()
    proc.wait(30)


@pytest.fixture(scope="module")
def saved(runs):
    """The exported SavedModels the explorer wrote (export/models/<name>/1), loaded here."""
    return {
        name: tf.saved_model.load(str(runs / "export" / "models" / name / "1"))
        for name in ("dpvae", "vae")
    }


@pytest.fixture(scope="module")
def models(runs):
    return {name: experiment.load(str(runs / "runs" / name)) for name in ("dpvae", "vae")}


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory):
    return tmp_path_factory.mktemp("explore_screenshots")


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through the system chromedriver (Selenium Manager never runs)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        assert os.path.exists(path), (
            f"{path} is missing: run  bash tools/setup.sh  (it installs Debian's chromium and "
            "chromium-driver), or  sudo apt-get install chromium chromium-driver"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1600,1300")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def page(browser, site, screenshots, request):
    """Opens the page (``request.param``: the query string), waits for the map; afterwards,
    saves a screenshot and checks that the JavaScript console logged no error."""
    query = getattr(request, "param", "")
    browser.get(f"{site}/{query}")
    _wait(browser, "return window.explorer && (explorer.ready || explorer.errors.length > 0)")
    assert browser.execute_script("return explorer.errors") == []
    yield browser
    browser.save_screenshot(str(screenshots / f"{request.node.name}.png"))
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == [], errors


def _wait(driver, script: str, timeout: float = 30.0, *args):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script, *args)
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for: {script}")


def _pixels(driver, selector: str, card: int = 0) -> np.ndarray:
    """The canvas's pixels as drawn, [H, W, 3] uint8."""
    data = driver.execute_script(
        """
        const c = explorer.cards[arguments[1]].element.querySelector(arguments[0]);
        return [c.width, c.height, Array.from(c.getContext("2d")
          .getImageData(0, 0, c.width, c.height).data)];
        """,
        selector,
        card,
    )
    w, h, rgba = data
    return np.asarray(rgba, np.uint8).reshape(h, w, 4)[..., :3]


def _expected(images: np.ndarray, columns: int | None = None) -> np.ndarray:
    """What the page draws for images [n, H, W, C]: side by side, values * 255 rounded."""
    images = np.asarray(images, np.float64)
    n, h, w, c = images.shape
    cols = min(columns or n, n)
    rows = -(-n // cols)
    grid = np.zeros((rows * h, cols * w, 3))
    for k in range(n):
        r, q = divmod(k, cols)
        grid[r * h : (r + 1) * h, q * w : (q + 1) * w] = images[k] if c == 3 else images[k][..., :1]
    return np.round(np.clip(grid, 0, 1) * 255)


def _assert_drawn(drawn: np.ndarray, images: np.ndarray, columns=None):
    expected = _expected(images, columns)
    assert drawn.shape == expected.shape
    assert np.abs(drawn.astype(np.float64) - expected).max() <= 1.0
    assert expected.std() > 5, "a flat image would not tell codes apart"


def _hover(driver, panel: int, x: float, y: float, card: int = 0):
    """Moves the mouse to page coordinates (x, y) over the map canvas ``panel``."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    canvas = driver.find_elements(By.CSS_SELECTOR, "canvas.map")[panel]
    rect = driver.execute_script("return arguments[0].getBoundingClientRect().toJSON()", canvas)
    dx = round(x - rect["left"] - rect["width"] / 2)
    dy = round(y - rect["top"] - rect["height"] / 2)
    ActionChains(driver).move_to_element_with_offset(canvas, dx, dy).perform()
    return canvas, dx, dy


def _decode(saved, name: str, signature: str, codes) -> np.ndarray:
    key = "z0" if signature == "decode_z0" else "z"
    fn = saved[name].signatures[signature]
    return fn(**{key: tf.constant(np.asarray(codes, np.float32))})["images"].numpy()


# ----------------------------------------------------------------------------------------------
# The page
# ----------------------------------------------------------------------------------------------
def test_map_draws_fast(page):
    timings = page.execute_script("return explorer.timings")
    print(f"\nmap of 10,000 test examples (two models) drawn in {timings['mapLoad']:.0f} ms")
    assert timings["mapLoad"] < 2 * MAP_LOAD_BUDGET_MS
    spaces = page.execute_script("return explorer.cards.map(c => c.panels.map(p => p.space))")
    assert spaces == [["z", "z0"], ["z"]]
    for card, panel in ((0, 0), (0, 1), (1, 0)):
        pixels = page.execute_script(
            """
            const c = explorer.cards[arguments[0]].panels[arguments[1]].canvas;
            return Array.from(c.getContext("2d").getImageData(0, 0, c.width, c.height).data);
            """,
            card,
            panel,
        )
        colors = np.unique(np.asarray(pixels, np.uint8).reshape(-1, 4), axis=0)
        assert len(colors) > 100, "densities, regions and points draw many colors"
    counts = page.execute_script("return explorer.cards.map(c => c.map.num_points)")
    assert counts == [10_000, 10_000]


def test_hover_shows_the_decoded_code(page, saved, models):
    """At a test point: that point's own code; elsewhere: the plane's point; both decoded by
    the export's ``decode``; log q and log p as the evaluation computes them; the compared
    model shows the same test example."""
    n = page.execute_script("return explorer.cards[0].map.num_points")
    times = []
    for i in (17, n // 2, n - 3):
        x, y = page.execute_script(
            "return explorer.cards[0].panels[0].pointOnPage(arguments[0])", i
        )
        page.execute_script(
            "explorer.cards[0].lastHover = null; explorer.cards[1].lastHover = null"
        )
        _hover(page, 0, x, y)
        hover = _wait(page, "return explorer.cards[0].lastHover")
        j = hover["index"]
        assert j >= 0
        xj, yj = page.execute_script(
            "return explorer.cards[0].panels[0].pointOnPage(arguments[0])", j
        )
        assert abs(xj - x) <= 1.5 and abs(yj - y) <= 1.5  # the nearest point to the cursor
        code = page.execute_script("return explorer.cards[0].panels[0].codeOf(arguments[0])", j)
        _assert_drawn(_pixels(page, ".decoded"), _decode(saved, "dpvae", "decode", [code]))
        assert hover["code"] == code
        # The map's code is the test example's posterior mean.
        exp = models["dpvae"]
        x_test = tf.cast(exp.data.test[j : j + 1], tf.float32) / 255.0
        np.testing.assert_allclose(code, exp.model.encode(x_test)[0].numpy()[0], atol=1e-4)
        log_p = float(exp.model.prior.log_prob(tf.constant([code], tf.float32))[0])
        assert hover["logP"] == pytest.approx(log_p, abs=1e-3)
        assert np.isfinite(hover["logQ"])
        linked = _wait(page, "return explorer.cards[1].lastHover")
        assert linked["index"] == j
        vae_code = page.execute_script("return explorer.cards[1].panels[0].codeOf(arguments[0])", j)
        _assert_drawn(_pixels(page, ".decoded", 1), _decode(saved, "vae", "decode", [vae_code]))
    # Away from the points: the plane's own point (2-D latent: the map is z itself).
    page.execute_script("explorer.cards[0].lastHover = null")
    x, y = page.execute_script(
        "const r = explorer.cards[0].panels[0].canvas.getBoundingClientRect();"
        "return [r.left + 3, r.top + 3]"
    )
    _hover(page, 0, x, y)
    hover = _wait(page, "return explorer.cards[0].lastHover")
    assert hover["index"] == -1
    box = page.execute_script("return explorer.cards[0].panels[0].extent")
    assert box[0] < hover["code"][0] < box[0] + 0.05 * (box[1] - box[0])
    assert box[3] - 0.05 * (box[3] - box[2]) < hover["code"][1] < box[3]
    _assert_drawn(_pixels(page, ".decoded"), _decode(saved, "dpvae", "decode", [hover["code"]]))
    # Latency: a stream of hovers, each waited for.
    for k in range(15):
        page.execute_script("explorer.cards[0].lastHover = null")
        _hover(page, 0, x + 20 + 10 * k, y + 40 + 8 * k)
        _wait(page, "return explorer.cards[0].lastHover")
    times = page.execute_script("return explorer.timings.decode")
    median = float(np.median(times[-15:]))
    print(f"\nhover decode (decode + log q/log p), median of 15: {median:.1f} ms")
    assert median < 2 * DECODE_BUDGET_MS


def test_slider_traverses_z0(page, saved):
    from selenium.webdriver.common.action_chains import ActionChains

    slider = page.execute_script("return explorer.cards[0].sliders[1].input")
    ActionChains(page).move_to_element_with_offset(slider, 30, 0).click().perform()
    state = _wait(page, "const s = explorer.cards[0].lastSlider; return s && s.code[1] > 0 && s")
    assert state["space"] == "z0"
    code = state["code"]
    assert code[0] == 0 and 0.5 < code[1] <= 4
    _assert_drawn(_pixels(page, ".slider-image"), _decode(saved, "dpvae", "decode_z0", [code]))


def test_interpolation_is_linear_in_z0(page, saved, models):
    from selenium.webdriver.common.action_chains import ActionChains

    corner = page.execute_script(
        "const r = explorer.cards[0].panels[0].canvas.getBoundingClientRect();"
        "return [r.left + 60, r.top + 70]"
    )
    _hover(page, 0, *corner)
    ActionChains(page).click_and_hold().move_by_offset(120, 40).move_by_offset(100, 110).release(
    ).perform()  # fmt: skip
    strip = _wait(page, "return explorer.cards[0].lastInterpolation")
    assert strip["space"] == "z0"
    codes = np.asarray(strip["codes"])  # [10, 2]
    t = np.linspace(0, 1, len(codes))[:, None]
    np.testing.assert_allclose(codes, (1 - t) * codes[0] + t * codes[-1], atol=1e-6)
    # The ends are the two points of the line, mapped to z0 by g.
    line = page.execute_script("return explorer.cards[0].panels[0].line")
    ends = [
        page.execute_script("return explorer.cards[0].panels[0].codeAt(...arguments[0]).code", p)
        for p in line
    ]
    z0 = models["dpvae"].model.prior.to_z0(tf.constant(ends, tf.float32)).numpy()
    np.testing.assert_allclose(codes[[0, -1]], z0, atol=1e-4)
    _assert_drawn(_pixels(page, ".strip"), _decode(saved, "dpvae", "decode_z0", codes), 10)


def test_samples_at_a_temperature(page, saved):
    from selenium.webdriver.common.by import By

    page.execute_script(
        "const t = explorer.cards[0].element.querySelector('.temperature');"
        "t.value = 0.5; t.dispatchEvent(new Event('input'));"
    )
    page.find_elements(By.CSS_SELECTOR, "button.sample")[0].click()
    state = _wait(page, "return explorer.cards[0].lastSamples")
    assert state["temperature"] == 0.5
    fn = saved["dpvae"].signatures["generate_with_temperature"]
    seed = tf.constant(state["seed"], tf.int64)
    images = fn(seed=seed, temperature=tf.fill([len(state["seed"])], 0.5))["images"].numpy()
    _assert_drawn(_pixels(page, ".samples"), images, 8)
    # The samples' codes on the map come from the export's encode signature.
    codes = saved["dpvae"].signatures["encode"](images=tf.constant(images))
    np.testing.assert_allclose(state["z"], codes["z_mean"].numpy(), atol=1e-5)
    np.testing.assert_allclose(state["z0"], codes["z0"].numpy(), atol=1e-5)


@pytest.fixture(scope="module")
def model_server(runs, site):
    """A stand-in for ``tensorflow_model_server --rest_api_enable_cors_support=true``: the dev
    server over the same exports, answering with TF Serving's CORS header; counts requests."""
    del site  # the exports exist once the explorer runs
    store = serve.ModelStore(str(runs / "export" / "models"))
    server = serve.make_server(store, "127.0.0.1", 0)
    seen = []

    class CorsHandler(server.RequestHandlerClass):
        def end_headers(self):
            self.send_header("Access-Control-Allow-Origin", "*")
            super().end_headers()

        def do_POST(self):
            seen.append(self.path)
            super().do_POST()

    server.RequestHandlerClass = CorsHandler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", seen
    server.shutdown()
    server.server_close()


def test_page_decodes_on_another_server(browser, site, model_server, saved, screenshots):
    url, seen = model_server
    browser.get(f"{site}/?server={url}&model=dpvae&model2=vae")
    _wait(browser, "return window.explorer && (explorer.ready || explorer.errors.length > 0)")
    assert browser.execute_script("return explorer.errors") == []
    x, y = browser.execute_script("return explorer.cards[0].panels[0].pointOnPage(5)")
    _hover(browser, 0, x, y)
    hover = _wait(browser, "return explorer.cards[0].lastHover")
    assert any(p == "/v1/models/dpvae:predict" for p in seen), seen
    _assert_drawn(_pixels(browser, ".decoded"), _decode(saved, "dpvae", "decode", [hover["code"]]))
    browser.save_screenshot(str(screenshots / "other_server.png"))
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == [], errors


# ----------------------------------------------------------------------------------------------
# The latent map and its cache
# ----------------------------------------------------------------------------------------------
def test_map_content(runs, site, models):
    del site  # the explorer computed and cached the maps
    for name in ("dpvae", "vae"):
        exp = models[name]
        folder = str(runs / "runs" / name / latent_map.CACHE_DIR)
        description, arrays = latent_map.read_arrays(folder)
        assert description["key"] == latent_map.cache_key(exp, latent_map.MapOptions())
        assert arrays["labels"].tolist() == exp.data.test_labels[:10_000].tolist()
        for space, info in description["spaces"].items():
            codes, pos = arrays[f"{space}_codes"], arrays[f"{space}_positions"]
            components = np.asarray(info["components"])
            np.testing.assert_allclose(components @ components.T, np.eye(2), atol=1e-6)
            np.testing.assert_allclose(pos, (codes - info["mean"]) @ components.T, atol=1e-4)
            g = description["grid_size"]
            assert len(info["log_p"]) == len(info["pocket"]) == g * g
    # The 2-D dpVAE: LP samples lie at most at the pocket threshold of log q(z), HP samples at
    # the leak threshold of log p(z); a grid cell is a pocket or a leak by those thresholds.
    exp = models["dpvae"]
    description, arrays = latent_map.read_arrays(str(runs / "runs" / "dpvae" / "explore"))
    thresholds = description["thresholds"]
    ctx = latent_map.eval_context(exp, latent_map.MapOptions())
    lp, hp = arrays["z_lp_positions"], arrays["z_hp_positions"]  # [n, 2]: z itself
    assert ctx.log_aggregate_posterior(lp).max() <= thresholds["pocket_log_q"] + 1e-3
    assert ctx.log_prior(hp).max() <= thresholds["leak_log_p"] + 1e-3
    space = description["spaces"]["z"]
    cells = latent_map.grid_points(space["extent"], description["grid_size"])
    np.testing.assert_allclose(space["log_p"], ctx.log_prior(cells), atol=1e-3)
    log_q = ctx.log_aggregate_posterior(cells)
    np.testing.assert_allclose(space["log_q"], log_q, atol=1e-3)
    pocket = (log_q <= thresholds["pocket_log_q"]) & (
        np.asarray(space["log_p"]) >= thresholds["prior_support_log_p"]
    )
    assert np.mean(pocket == np.asarray(space["pocket"], bool)) > 0.999
    assert 0 < np.sum(space["pocket"]) and 0 < np.sum(space["leak"])
    # z0 = g(z), and the z0 grid's p is N(0, I).
    z0 = exp.model.prior.to_z0(tf.constant(arrays["z_codes"][:100])).numpy()
    np.testing.assert_allclose(arrays["z0_codes"][:100], z0, atol=1e-4)
    z0_space = description["spaces"]["z0"]
    z0_cells = latent_map.grid_points(z0_space["extent"], description["grid_size"])
    log_normal = -0.5 * np.sum(np.log(2 * np.pi) + z0_cells**2, axis=1)
    np.testing.assert_allclose(z0_space["log_p"], log_normal, atol=1e-3)
    # The 4-D VAE is drawn through PCA.
    description, _ = latent_map.read_arrays(str(runs / "runs" / "vae" / latent_map.CACHE_DIR))
    assert description["latent_dim"] == 4 and list(description["spaces"]) == ["z"]


def test_cache_follows_the_checkpoint(runs, site, tmp_path):
    del site
    workdir = tmp_path / "vae"
    shutil.copytree(runs / "runs" / "vae", workdir)
    options = latent_map.MapOptions(num_points=200, num_aggregate=200, num_posterior=100)
    exp = experiment.load(str(workdir))
    _, _, computed = latent_map.load_or_compute(exp, options)
    assert computed
    _, _, computed = latent_map.load_or_compute(experiment.load(str(workdir)), options)
    assert not computed
    manager = tf.train.CheckpointManager(
        exp.checkpoint, str(workdir / experiment.CHECKPOINTS_DIR), max_to_keep=5
    )
    manager.save(checkpoint_number=exp.step + 1)
    folder, _, computed = latent_map.load_or_compute(experiment.load(str(workdir)), options)
    assert computed
    with open(os.path.join(folder, latent_map.MAP_JSON)) as f:
        assert json.load(f)["key"]["checkpoint"] == f"ckpt-{exp.step + 1}"


# ----------------------------------------------------------------------------------------------
# The command line
# ----------------------------------------------------------------------------------------------
def _serves(url: str) -> list:
    with urllib.request.urlopen(f"{url}/explore/models", timeout=30) as response:
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        return json.load(response)


def test_models_and_cors(site):
    models = _serves(site)
    assert [(m["name"], m["version"], m["latent_dim"]) for m in models] == [
        ("dpvae", 1, 2),
        ("vae", 1, 4),
    ]
    assert models[0]["prior"] == "decoupled" and models[1]["prior"] == "standard_normal"


def _error(cmd: list[str], cwd) -> str:
    run = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=ENV, timeout=600)
    assert run.returncode == 2, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, run.stderr
    return lines[0]


def test_bad_input_is_one_error_line(runs, site, tmp_path):
    del site
    # A workdir without a checkpoint.
    empty = tmp_path / "untrained"
    empty.mkdir()
    shutil.copy(runs / "runs" / "vae" / "config.json", empty)
    # --port=0: the README command's explorer holds 8080 meanwhile.
    explorer = [sys.executable, "-m", "tfvae.explore"]
    # A port in use.
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    # A model that cannot decode: an export of the workdir's checkpoint without `decode`.
    broken = tmp_path / "broken"
    shutil.copytree(runs / "runs" / "vae", broken, ignore=shutil.ignore_patterns("explore"))
    exports = tmp_path / "exports"
    module = tf.Module()
    module.f = tf.function(
        lambda seed: {"images": tf.zeros([tf.shape(seed)[0], 28, 28, 1])},
        input_signature=[tf.TensorSpec([None], tf.int64)],
    )
    version = exports / "broken" / "1"
    tf.saved_model.save(module, str(version), signatures={"generate": module.f})
    (version / "assets.extra").mkdir()
    record = {
        "workdir": str(broken),
        "checkpoint": experiment.latest_checkpoint(str(broken)),
    }
    (version / "assets.extra" / "tfvae_export.json").write_text(json.dumps(record))
    cases = {
        "checkpoint": [*explorer, f"--workdir={empty}", "--port=0"],
        "port": [*explorer, f"--workdir={runs / 'runs' / 'vae'}", f"--port={port}"],
        "decode": [*explorer, f"--workdir={broken}", f"--export_dir={exports}", "--port=0"],
    }
    try:
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            found = dict(
                zip(cases, pool.map(lambda c: _error(c, runs), cases.values()), strict=True)
            )
    finally:
        taken.close()
    assert "No checkpoint in" in found["checkpoint"]
    assert f"Cannot serve on 127.0.0.1:{port}" in found["port"]
    assert "--port" in found["port"]
    assert "cannot decode" in found["decode"] and "no decode" in found["decode"]


def test_explorer_reuses_the_dev_server():
    """The page's server is tfvae.serve's handler with routes added, not a second parser."""
    server = explore.make_explorer_server([], "127.0.0.1", 0)
    try:
        assert issubclass(server.RequestHandlerClass, serve._Handler)
        assert isinstance(server.RequestHandlerClass.store, serve.ModelStore)
    finally:
        server.server_close()


def _setup_sh(tmp_path, apt_get: str) -> subprocess.CompletedProcess:
    """tools/setup.sh with stubs (pip, root, ``apt-get``), the dataset present, no Chromium."""
    (tmp_path / "tools").mkdir(parents=True)
    shutil.copy(os.path.join(REPO, "tools", "setup.sh"), tmp_path / "tools" / "setup.sh")
    stubs = {tmp_path / ".venv" / "bin" / "python": "exit 0"}
    stubs.update({tmp_path / "bin" / "id": "echo 0", tmp_path / "bin" / "apt-get": apt_get})
    for path, body in stubs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    (tmp_path / "fashion").mkdir()
    (tmp_path / "fashion" / "train-images-idx3-ubyte.gz").write_bytes(b"")
    env = dict(
        os.environ,
        PATH=f"{tmp_path / 'bin'}:/usr/bin:/bin",
        TFVAE_FASHION_MNIST_DIR=str(tmp_path / "fashion"),
        TFVAE_CHROMIUM=str(tmp_path / "no-chromium"),
    )
    cmd = ["bash", str(tmp_path / "tools" / "setup.sh")]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)


def test_setup_reports_a_failed_chromium_install(tmp_path):
    failed = _setup_sh(tmp_path / "a", "echo 'E: Could not get lock' >&2; exit 100")
    assert "tfvae is set up" not in failed.stdout
    assert "Chromium was NOT" in failed.stderr
    assert "sudo apt-get install chromium chromium-driver" in failed.stderr
    worked = _setup_sh(tmp_path / "b", 'echo "$@" >> "$(dirname "$0")/apt.log"')
    assert "tfvae is set up" in worked.stdout, worked.stderr
    assert (
        "install -y -qq chromium chromium-driver"
        in (tmp_path / "b" / "bin" / "apt.log").read_text()
    )


def test_an_export_of_the_checkpoint_is_reused(runs, site, models, tmp_path):
    del site  # it exported both workdirs
    exports = str(runs / "export" / "models")
    assert explore.find_export(models["dpvae"], exports) == ("dpvae", 1)
    assert explore.find_export(models["vae"], exports) == ("vae", 1)
    # Another checkpoint of the workdir has no export yet.
    workdir = tmp_path / "dpvae"
    shutil.copytree(runs / "runs" / "dpvae", workdir)
    assert explore.find_export(experiment.load(str(workdir)), exports) is None
