"""report.html in a real browser: headless Chromium renders it from file:// with the network cut off;
the screenshot must show the plots, and the page must name no http(s) resource.

Chromium comes from `make chromium` (run by `make test`); without it these tests skip, saying so."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from fmtrain.report import classification_summary, write_comparison, write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WIDTH, HEIGHT = 1000, 4000
# matplotlib's first two default colours: the train (C0) and val (C1) curves of every history plot.
TRAIN_BLUE, VAL_ORANGE = (0x1F, 0x77, 0xB4), (0xFF, 0x7F, 0x0E)


def _run(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps({
        "schema_version": 1, "name": "browser_check", "task": "classification", "epochs_run": 4,
        "final": {"train": {"loss": 0.2, "accuracy": 0.95}, "test": {"loss": 0.3, "accuracy": 0.9}},
        "data": {"train": 60, "test": 6}}))
    rows = ["epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds"]
    rows += [f"{e},{1 / e},{0.5 + e / 10},{1.2 / e},{0.45 + e / 10},{0.01 / e},0.1" for e in range(1, 5)]
    (path / "history.csv").write_text("\n".join(rows) + "\n")
    (path / "config.yaml").write_text("name: browser_check\nseed: 1\noptimizer: {name: adam, learning_rate: 0.01}\n")
    summary = classification_summary([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], ["cat", "dog", "bird"])
    (path / "eval-test.json").write_text(json.dumps({"schema_version": 1, "split": "test", "n_samples": 6,
                                                     "metrics": {"accuracy": 0.6667}, "classification": summary}))
    write_report(path)
    return path


def _screenshot(page: Path, out: Path):
    from PIL import Image

    if CHROMIUM is None:
        pytest.skip("chromium is not installed; `make chromium` installs Debian's package (needs root)")
    command = [CHROMIUM, "--headless", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
               f"--user-data-dir={out.parent / 'chromium-profile'}",
               # No network: every host name fails to resolve and every proxied request goes nowhere.
               "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
               f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={out}", page.resolve().as_uri()]
    if os.geteuid() == 0:
        command.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    done = subprocess.run(command, capture_output=True, text=True, timeout=90)
    assert out.is_file(), f"chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    return Image.open(out).convert("RGB")


def _near(image, colour, tolerance: int = 12):
    """A boolean mask of the pixels within ``tolerance`` of ``colour`` in every channel."""
    import numpy as np

    pixels = np.asarray(image, dtype=np.int16)
    return (np.abs(pixels - np.array(colour, dtype=np.int16)) <= tolerance).all(axis=-1)


def test_chromium_renders_the_report_with_its_plots(tmp_path):
    from PIL import ImageStat

    run = _run(tmp_path / "run")
    image = _screenshot(run / "report.html", tmp_path / "report.png")
    assert image.size == (WIDTH, HEIGHT)
    blue, orange = _near(image, TRAIN_BLUE), _near(image, VAL_ORANGE)
    assert blue.sum() > 500 and orange.sum() > 500, "no train/val curves on the rendered page"
    # Where the curves are, the page is a picture, not a blank box: crop the plot area and measure.
    ys, xs = blue.nonzero()
    plots = image.crop((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
    assert plots.size[0] > 200 and plots.size[1] > 200
    assert min(ImageStat.Stat(plots).var) > 300  # variance per channel; a blank area has ~0

    # The same page without its image files (what a page pointing at the network would show
    # offline): no curve pixels at all, so the checks above do tell a rendered plot from none.
    shutil.rmtree(run / "plots")
    broken = _screenshot(run / "report.html", tmp_path / "broken.png")
    assert not _near(broken, TRAIN_BLUE).any()


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self._in_style = tag == "style"
        self.links += [value or "" for name, value in attrs if name in ("src", "href", "srcset", "action", "data")]
        self.styles += [value or "" for name, value in attrs if name == "style"]

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def _check_offline(page: Path) -> list[str]:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    assert parser.links, "no images found: nothing was checked"
    for link in parser.links:
        assert "://" not in link and not link.startswith("//"), f"{page.name} fetches {link}"
        assert (page.parent / link).is_file(), f"{page.name}: {link} is not a file beside it"
    for css in parser.styles:
        assert "url(" not in css and "@import" not in css, f"{page.name}: CSS loads {css[:80]}"
    return parser.links


def test_the_report_and_the_comparison_need_no_network(tmp_path):
    first = _run(tmp_path / "runs" / "a")
    second = shutil.copytree(first, tmp_path / "runs" / "b")
    assert set(_check_offline(first / "report.html")) == {
        "plots/history_loss.png", "plots/history_accuracy.png", "plots/history_lr.png", "plots/confusion_test.png"}
    compare = write_comparison([first, second], tmp_path / "compare.html")
    assert "compare_plots/lr.png" in _check_offline(compare)
