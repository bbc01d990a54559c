"""The teaching pages in a real browser: Debian's chromium driven by Playwright.

The pages are loaded from disk (file://); every request that is not file:// or data: is
blocked and fails the test, as does any console error. The numbers in the DOM are
compared with the engine's (fnn.teach.neuron, fnn.teach.two_layer). Screenshots of each
state go to $FASTNN_SCREENSHOTS, else <tmp>/fastnn-browser-screenshots.

`make test` installs chromium first where it can (root on Debian); elsewhere the browser
tests skip with the reason, and `make test-browser` runs only them.
"""

import os
import re
import socket
import subprocess
import sys
import tempfile
import urllib.request

import pytest

import fastnn as fnn
from fastnn.teach.playground import NETWORK_HIDDEN, NETWORK_SEED, write_playground

CHROMIUM = os.environ.get("FASTNN_CHROMIUM", "/usr/bin/chromium")
SHOTS = os.environ.get("FASTNN_SCREENSHOTS") or os.path.join(tempfile.gettempdir(), "fastnn-browser-screenshots")
TITLES = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "ReLU", "leaky_relu": "Leaky ReLU", "linear": "Linear"}


@pytest.fixture(scope="module")
def playground(tmp_path_factory):
    return write_playground(str(tmp_path_factory.mktemp("playground")))


# --- without a browser: the page file, the command line, the server ----------------------------

def test_playground_page_is_self_contained(playground):
    with open(playground, encoding="utf-8") as f:
        html = f.read()
    assert not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', html)
    assert "<script src" not in html and "<link" not in html and "@import" not in html
    assert "Sigmoid squashes outputs into a 0..1 range" in html


def test_playground_cli_writes_the_page(tmp_path, capsys):
    from fastnn.teach.commands import main
    assert main(["playground", "--out", str(tmp_path / "pg")]) == 0
    assert "fastnn serve" in capsys.readouterr().out
    assert os.path.getsize(tmp_path / "pg" / "playground.html") > 5000
    with pytest.raises(SystemExit) as exit:   # argparse: one line, status 2
        main(["playground", "--out", str(tmp_path / "pg"), "--hidden", "0"])
    assert exit.value.code == 2
    assert capsys.readouterr().err.startswith("fastnn playground: error: argument --hidden")


def test_serve_binds_loopback_only(playground):
    from fastnn.teach.serve import make_server
    server = make_server(os.path.dirname(playground), 0)
    try:
        assert server.server_address[0] == "127.0.0.1"
        assert server.socket.getsockname()[0] == "127.0.0.1"
    finally:
        server.server_close()
    with pytest.raises(ValueError, match="no such folder"):
        make_server(os.path.join(os.path.dirname(playground), "missing"))


def _other_addresses():
    """This machine's non-loopback IPv4 addresses (may be none)."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        return []
    return sorted({i[4][0] for i in infos if not i[4][0].startswith("127.")})


def test_serve_command_prints_the_url_and_serves_the_page(playground):
    folder = os.path.dirname(playground)
    proc = subprocess.Popen([sys.executable, "-m", "fastnn.cli", "serve", folder, "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        match = re.search(r"at (http://127\.0\.0\.1:(\d+)/)", line)
        assert match, line + proc.stderr.read() if proc.poll() is not None else line
        assert proc.stdout.readline().strip() == match.group(1) + "playground.html"
        with urllib.request.urlopen(match.group(1) + "playground.html", timeout=10) as response:
            body = response.read()
        with open(playground, "rb") as f:
            assert body == f.read()
        for address in _other_addresses():   # nothing listens on the other interfaces
            with pytest.raises(OSError):
                socket.create_connection((address, int(match.group(2))), timeout=2).close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_serve_command_errors_are_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "fastnn.cli", "serve", str(tmp_path / "nothing")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("fastnn serve: error: ") and result.stderr.count("\n") == 1


# --- in the browser ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"needs Debian's chromium at {CHROMIUM}: `make test` installs it when run as root on "
                    "Debian (apt-get install -y chromium); elsewhere install it and run `make test-browser`")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install -e '.[dev]')")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """A fresh page that records console errors, page errors and requests leaving the page."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    problems = []

    def route(r):
        if r.request.url.startswith(("file:", "data:")):
            r.continue_()
        else:
            problems.append(f"request left the page: {r.request.url}")
            r.abort()
    context.route("**/*", route)
    pg = context.new_page()
    pg.on("console", lambda m: m.type == "error" and problems.append(f"console error: {m.text}"))
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    yield pg
    context.close()
    assert not problems, problems


def shot(page, name):
    os.makedirs(SHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SHOTS, name + ".png"), full_page=True)


def _neuron_settings(page):
    """The inputs, weights, bias and activation the page shows, as numbers."""
    value = lambda i: float(page.input_value(f"#{i}-number"))   # noqa: E731
    return ([value("x1"), value("x2")], [value("w1"), value("w2")], value("b"),
            page.get_attribute("body", "data-activation"))


def _assert_dom_equals_engine(page):
    inputs, weights, bias, activation = _neuron_settings(page)
    r = fnn.teach.neuron(inputs, weights, bias, activation)
    text = lambda i: page.inner_text("#" + i).strip()   # noqa: E731
    assert float(page.get_attribute("body", "data-z")) == r.z   # the same correctly rounded sum
    assert float(page.get_attribute("body", "data-output")) == pytest.approx(r.output, rel=1e-12, abs=1e-15)
    terms = " + ".join(f"({x:.2f} x {w:.2f})" for x, w in zip(inputs, weights))
    assert text("forward") == f"{terms} {'-' if bias < 0 else '+'}{abs(bias):.2f} = {r.z:.2f}"
    assert text("weighted-sum") == f"{r.z:.2f}" and text("output") == f"{r.output:.2f}"
    if r.confidence is None:
        assert text("confidence").startswith("n/a")
    else:
        assert text("confidence") == f"{100 * r.confidence:.0f}%"
    assert text("classification") == r.label.capitalize()
    changed = (f"Linear score {r.z:.2f} stays {r.output:.2f}" if activation == "linear"
               else f"Linear score {r.z:.2f} becomes {r.output:.2f} after {TITLES[activation]}")
    assert text("changed").startswith(changed)
    return r


def test_playground_defaults_reproduce_the_seed(page, playground):
    page.goto("file://" + playground)
    assert page.inner_text("#forward") == "(0.90 x 1.20) + (0.30 x -0.80) -0.15 = 0.69"
    assert [page.inner_text(f"#{i}") for i in ("weighted-sum", "output", "confidence", "classification")] == \
        ["0.69", "0.67", "67%", "Positive"]
    assert page.inner_text("#changed") == "Linear score 0.69 becomes 0.67 after Sigmoid"
    assert page.inner_text("#act-description").startswith("Sigmoid squashes outputs into a 0..1 range")
    _assert_dom_equals_engine(page)
    shot(page, "playground_1_defaults")


def test_playground_sliders_and_activations_match_the_engine(page, playground):
    page.goto("file://" + playground)
    descriptions = set()
    for name in TITLES:
        page.check(f"#act-{name}")
        descriptions.add(page.inner_text("#act-description"))
        _assert_dom_equals_engine(page)
    assert len(descriptions) == len(TITLES)
    page.focus("#x1")
    for _ in range(40):   # drag-like: the slider moves in steps of 0.01, each firing "input"
        page.keyboard.press("ArrowLeft")
    assert page.input_value("#x1-number") == "0.5"
    page.focus("#b")
    for _ in range(25):
        page.keyboard.press("ArrowLeft")
    for name in TITLES:
        page.check(f"#act-{name}")
        r = _assert_dom_equals_engine(page)
    assert r.z < 0 and page.inner_text("#classification") == "Negative"   # 0.5*1.2 - 0.24 - 0.4
    page.check("#act-relu")
    assert page.inner_text("#changed") == f"Linear score {r.z:.2f} becomes 0.00 after ReLU"
    shot(page, "playground_2_relu_negative")
    # number boxes; 0.125 is an exact tie: rounded half to even as Python does ("0.12")
    for box, value in (("x1", "0.5"), ("x2", "0"), ("w1", "0.25"), ("w2", "1"), ("b", "0")):
        page.fill(f"#{box}-number", value)
    page.check("#act-linear")
    assert _assert_dom_equals_engine(page).z == 0.125 and page.inner_text("#weighted-sum") == "0.12"
    page.check("#act-tanh")
    _assert_dom_equals_engine(page)


def _map_pixels(page, cells):
    """The predicted class ("positive"/"negative") painted at canvas pixels (col, row)."""
    return page.evaluate("""cells => {
        const ctx = document.getElementById("map").getContext("2d");
        return cells.map(([c, r]) => { const d = ctx.getImageData(c, r, 1, 1).data;
                                       return d[2] > d[0] ? "positive" : "negative"; });
    }""", cells)


def test_hidden_layer_mode_redraws_the_map_and_linear_collapses(page, playground):
    page.goto("file://" + playground)
    page.check("#hidden-mode")
    assert page.is_hidden("#weights-box") and page.is_visible("#map")
    size = page.evaluate("document.getElementById('map').width")
    lo, hi = -2.0, 2.0
    cells = [(c, r) for c in range(3, size, 13) for r in range(5, size, 13)]
    maps = {}
    for name in TITLES:
        page.check(f"#act-{name}")
        x = [float(page.input_value("#x1-number")), float(page.input_value("#x2-number"))]
        net = fnn.teach.two_layer(x, hidden=NETWORK_HIDDEN, activation=name, seed=NETWORK_SEED, trials=1)
        assert float(page.get_attribute("body", "data-net-output")) == pytest.approx(net.output, abs=1e-9)
        assert page.inner_text("#net-output") == f"{net.output:.4f}"
        assert page.inner_text("#net-classification") == ("Positive" if net.output > 0 else "Negative")
        assert page.get_attribute("#map", "data-activation") == name
        maps[name] = page.evaluate("document.getElementById('map').toDataURL()")
        painted = _map_pixels(page, cells)
        for (c, r), colour in zip(cells, painted):   # each sampled pixel: the engine's class there
            point = [lo + (hi - lo) * (c + 0.5) / size, lo + (hi - lo) * (size - 1 - r + 0.5) / size]
            out = fnn.teach.two_layer(point, hidden=NETWORK_HIDDEN, activation=name, seed=NETWORK_SEED,
                                      trials=1).output
            if abs(out) > 1e-9 and abs(point[0] - x[0]) + abs(point[1] - x[1]) > 0.3:   # not under the ring
                assert colour == ("positive" if out > 0 else "negative"), (name, point, out)
        lesson = page.inner_text("#lesson")
        if name == "linear":
            assert lesson.startswith("Without nonlinearity, extra layers collapse into one bigger linear transform")
            collapse = page.inner_text("#collapse")
            w, b = net.collapsed_w[:, 0], net.collapsed_b[0]
            assert f"W = W1 @ W2 = [{w[0]:.4f}, {w[1]:.4f}]" in collapse and f"b2 = {b:.4f}" in collapse
            assert collapse.endswith(f"= {net.collapsed_output:.4f}") and net.collapses
            assert float(page.get_attribute("body", "data-collapsed-output")) == pytest.approx(net.output, abs=1e-9)
        else:
            assert page.is_hidden("#collapse") and "bends the boundary" in lesson and not net.collapses
        shot(page, f"playground_3_hidden_{name}")
    assert len(set(maps.values())) == len(TITLES)   # the map is redrawn for every activation
    page.focus("#x1")   # moving an input moves the ring and the network's numbers
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    x = [float(page.input_value("#x1-number")), float(page.input_value("#x2-number"))]
    net = fnn.teach.two_layer(x, hidden=NETWORK_HIDDEN, activation="linear", seed=NETWORK_SEED, trials=1)
    assert x[0] == 1.0 and float(page.get_attribute("body", "data-net-output")) == pytest.approx(net.output, abs=1e-9)
    page.uncheck("#hidden-mode")
    assert page.is_visible("#forward") and page.is_hidden("#map")


# --- the training-loop visualiser page ----------------------------------------------------------

@pytest.fixture(scope="module")
def visual_run(tmp_path_factory):
    return fnn.teach.visualize("xor", hidden="8", lr="balanced", epochs=12, n=40, grid=16, checkpoints=4,
                               out=str(tmp_path_factory.mktemp("visualize")), progress=False)


def test_visualizer_slider_shows_the_engine_numbers(page, visual_run):
    page.goto("file://" + os.path.abspath(visual_run.files["html"]) + "#cp=0")
    for k, cp in enumerate(visual_run.checkpoints):
        page.focus("#slider")
        page.keyboard.press("Home")
        for _ in range(k):   # the keyboard moves the slider one checkpoint at a time
            page.keyboard.press("ArrowRight")
        assert page.get_attribute("body", "data-checkpoint") == str(k)
        assert page.inner_text("#epoch-label").startswith(f"epoch {cp.epoch} of {visual_run.epochs}")
        loss, accuracy = re.fullmatch(r"loss (\S+) \u00b7 accuracy (\S+)%", page.inner_text("#stats")).groups()
        assert abs(float(loss) - cp.loss) <= 5e-4 * cp.loss + 1e-6   # 4 significant digits
        assert accuracy == f"{100 * cp.accuracy:.1f}"
        shown = page.eval_on_selector_all("#samples tbody tr", "rows => rows.map(r => r.children[4].textContent)")
        assert shown == [f"{round(float(p), 6):.3f}" for p in cp.probs]   # the page embeds 6 decimals
        wrong = page.eval_on_selector_all("#samples tbody tr.wrong", "rows => rows.length")
        assert wrong == int((~cp.correct).sum())
        shot(page, f"visualizer_checkpoint_{k}")


# --- the Training Loop Visualizer (six setups on the seed's 8 points) --------------------------------

@pytest.fixture(scope="module")
def loop_page(tmp_path_factory):
    from fastnn.teach.loop import record_setups, write_loop_page
    return write_loop_page(str(tmp_path_factory.mktemp("loop"))), record_setups()


def _loop_state(page):
    return {"loss": page.inner_text("#loss-value"), "accuracy": page.inner_text("#accuracy"),
            "state": page.inner_text("#fit-state"), "epoch": int(page.get_attribute("body", "data-epoch"))}


def _assert_loop_matches(page, data):
    setup, k = page.get_attribute("body", "data-setup"), int(page.get_attribute("body", "data-checkpoint"))
    cp = data["runs"][setup]["checkpoints"][k]
    assert _loop_state(page) == {"loss": f"{cp['loss']:.2f}", "accuracy": f"{round(100 * cp['accuracy'])}%",
                                 "state": cp["state"].capitalize(), "epoch": cp["epoch"]}
    assert f"{cp['loss']:.3f}" in page.inner_text("#step-loss")
    assert f"norm is {cp['grad_norm']:.4f}" in page.inner_text("#step-backprop")
    assert f"a step of size {cp['update']:.4f}" in page.inner_text("#step-update")
    confs = page.eval_on_selector_all("#samples tbody tr", "rows => rows.map(r => r.children[3].textContent)")
    want = [p if pt["label"] == 1 else 1 - p for p, pt in zip(cp["probs"], data["points"])]
    assert confs == [f"{round(100 * c)}%" for c in want]
    results = page.eval_on_selector_all("#samples tbody tr", "rows => rows.map(r => r.children[4].textContent)")
    assert results == ["correct" if c else "wrong" for c in cp["correct"]]
    return cp


def test_loop_page_defaults_reproduce_the_seed(page, loop_page):
    path, data = loop_page
    page.goto("file://" + path)
    assert page.get_attribute("body", "data-setup") == "deep-balanced"
    assert _loop_state(page) == {"loss": "0.69", "accuracy": "50%", "state": "Underfitting", "epoch": 0}
    _assert_loop_matches(page, data)
    p = data["runs"]["deep-balanced"]["checkpoints"][0]["probs"][0]
    assert page.inner_text("#sample").startswith(f"Point (-1, 1) should be positive. {round(100 * p)}%")
    assert page.inner_text("#rate-text").endswith("A healthy step size for this toy problem. Fast enough to learn "
                                                  "without obvious overshoot.")
    assert len(page.query_selector_all("#rules li")) == 5
    shot(page, "loop_1_defaults")


def test_loop_page_scrub_and_switch_setups_keep_the_epoch(page, loop_page):
    path, data = loop_page
    page.goto("file://" + path)
    page.focus("#scrubber")
    for _ in range(9):
        page.keyboard.press("ArrowRight")
    cp = _assert_loop_matches(page, data)
    epoch = cp["epoch"]
    seen = set()
    for depth in ("shallow", "deep"):
        for rate in ("gentle", "balanced", "unstable"):
            page.check(f"#depth-{depth}")
            page.check(f"#rate-{rate}")
            assert page.get_attribute("body", "data-setup") == f"{depth}-{rate}"
            assert _assert_loop_matches(page, data)["epoch"] == epoch   # the epoch is kept
            seen.add(page.inner_text("#rate-text"))
            seen.add(page.inner_text("#depth-text"))
    assert len(seen) == 5
    page.check("#rate-unstable")
    assert page.inner_text("#fit-state") == "Unstable"
    shot(page, "loop_2_deep_unstable")
    page.check("#rate-balanced")
    page.focus("#scrubber")
    page.keyboard.press("End")
    last = _assert_loop_matches(page, data)
    assert last["epoch"] == data["epochs"] and last["accuracy"] == 1.0
    shot(page, "loop_3_deep_balanced_last")


def _map_colour(page, x, y):
    return page.evaluate("""([x, y]) => { const d = document.getElementById("map").getContext("2d")
                                          .getImageData(x, y, 1, 1).data; return [d[0], d[1], d[2]]; }""", [x, y])


def test_loop_page_sample_selection_and_map_colours(page, loop_page):
    path, data = loop_page
    page.goto("file://" + path)
    page.focus("#scrubber")
    page.keyboard.press("End")
    cp = _assert_loop_matches(page, data)
    page.click("#samples tbody tr:nth-child(3)")   # ne-negative
    assert page.get_attribute("body", "data-selected") == "2"
    p = 1 - cp["probs"][2]
    assert page.inner_text("#sample").startswith(f"Point (1, 1) should be negative. {round(100 * p)}%")
    assert page.eval_on_selector("#samples tr.selected td", "td => td.textContent") == "ne-negative"
    box = page.query_selector("#map").bounding_box()
    ext, size = data["extent"], 360
    pt = data["points"][5]   # se-soft, clicked on the map
    page.mouse.click(box["x"] + (pt["x"] - ext[0]) / (ext[1] - ext[0]) * box["width"],
                     box["y"] + (1 - (pt["y"] - ext[2]) / (ext[3] - ext[2])) * box["height"])
    assert page.get_attribute("body", "data-selected") == "5"
    assert page.eval_on_selector("#samples tr.selected td", "td => td.textContent") == "se-soft"
    G = data["grid"]   # painted colours: teal where the engine predicts positive, warm where negative
    for gj in range(1, G, 5):
        for gi in range(1, G, 5):
            prob = cp["grid"][gj * G + gi] / 100
            if abs(prob - 0.5) < 0.1:
                continue
            r, g, b = _map_colour(page, round(gi / (G - 1) * (size - 1)), round((size - 1) - gj / (G - 1) * (size - 1)))
            point_near = any(abs(gi / (G - 1) * (ext[1] - ext[0]) + ext[0] - q["x"]) < 0.25 and
                             abs(gj / (G - 1) * (ext[3] - ext[2]) + ext[2] - q["y"]) < 0.25 for q in data["points"])
            if not point_near:
                assert (g > r) == (prob >= 0.5), (gi, gj, prob, (r, g, b))
    legend = page.inner_text(".legend")
    assert "predict positive" in legend and "predict negative" in legend
    shot(page, "loop_4_selected_sample")
    page.set_viewport_size({"width": 390, "height": 800})   # phone width: nothing wider than the screen
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
