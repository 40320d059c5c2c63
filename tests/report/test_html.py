"""The HTML report: structure (html.parser), statistics against fastseg.stats, overlays, and a
render in headless Chromium."""

from __future__ import annotations

import base64
import csv
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from fastseg.errors import InputError
from fastseg.report import write_html_report
from fastseg.stats import compare_tables


class Page(HTMLParser):
    """Tables (by class), figures (by class) and images of a page, with the text of each table."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict[str, str]] = []
        self.figures: list[dict[str, str]] = []
        self.images: list[str] = []
        self.text: list[str] = []
        self._table_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "table":
            self.tables.append({**a, "text": ""})
            self._table_depth += 1
        elif tag == "figure":
            self.figures.append(a)
        elif tag == "img":
            self.images.append(a.get("src", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table_depth -= 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._table_depth:
            self.tables[-1]["text"] += data + "|"


def write_table(path: Path, shift: float, seed: int, cases: int = 12) -> Path:
    rng = np.random.default_rng(seed)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["case", "label", "dice", "hd95", "pred_voxels", "empty"])
        for c in range(cases):
            for label in (1, 2):
                dice = float(np.clip(rng.normal(0.8 + shift, 0.05), 0, 1))
                hd95 = "inf" if (c, label) == (3, 2) else f"{rng.gamma(2.0, 1.0):.4f}"
                w.writerow([f"case_{c:02d}", label, f"{dice:.6f}", hd95, 100, ""])
    return path


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text())
    return page


def test_single_table_report_structure(tmp_path: Path) -> None:
    csv_path = write_table(tmp_path / "method_a.csv", 0.0, 0)
    out = write_html_report(csv_path, tmp_path / "out" / "report.html", worst=3)
    assert out == tmp_path / "out" / "report.html"
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temporary left
    page = parse(out)
    assert [f["data-metric"] for f in page.figures if f.get("class") == "metric-plot"] == [
        "dice",
        "hd95",
    ]
    assert len(page.images) == 2
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    classes = [t.get("class") for t in page.tables]
    assert classes == ["summary", "worst", "worst"] and "stats" not in classes
    worst = [t for t in page.tables if t.get("class") == "worst"]
    assert [t["data-label"] for t in worst] == ["1", "2"]
    # Worst by dice, lowest first: the three smallest dice of label 1.
    with csv_path.open() as f:
        rows = [r for r in csv.DictReader(f) if r["label"] == "1"]
    lowest = sorted(rows, key=lambda r: float(r["dice"]))[:3]
    cells = worst[0]["text"].split("|")
    assert [c for c in cells if c.startswith("case_")] == [r["case"] for r in lowest]
    assert "1 non-finite" in page.tables[0]["text"]


def test_comparison_shows_the_stats_of_compare_tables(tmp_path: Path) -> None:
    a = write_table(tmp_path / "with_tta.csv", 0.04, 1)
    b = write_table(tmp_path / "without_tta.csv", 0.0, 2)
    out = write_html_report(a, tmp_path / "r.html", compare_csv=b, label_names={1: "hippocampus"})
    page = parse(out)
    stats = [t for t in page.tables if t.get("class") == "stats"]
    assert [t["data-metric"] for t in stats] == ["dice", "hd95"]
    for table in stats:
        expected = compare_tables(a, b, table["data-metric"], drop_nonfinite=True)
        for result in expected.values():
            assert result.test in table["text"]
            assert f"{result.pvalue:.4g}" in table["text"]
            assert f"{result.effect_size:.4g}" in table["text"]
            assert result.reason in table["text"]
        assert "hippocampus" in table["text"]
    assert "11 / 11 pairs" in stats[1]["text"]  # the non-finite hd95 case is left out
    assert len([f for f in page.figures if f.get("class") == "metric-plot"]) == 2


def test_worst_cases_get_overlays_and_text_is_escaped(tmp_path: Path) -> None:
    from fastseg.io import Volume, write

    rng = np.random.default_rng(3)
    image = rng.normal(0, 100, (10, 16, 14)).astype(np.float32)
    ref = np.zeros((10, 16, 14), np.uint8)
    ref[3:7, 4:12, 4:10] = 1
    pred = np.roll(ref, 2, axis=2)
    write(Volume(image, spacing=(2.0, 1.0, 1.0)), tmp_path / "img.nii.gz")
    write(Volume(ref, spacing=(2.0, 1.0, 1.0)), tmp_path / "ref.nii.gz")
    csv_path = tmp_path / "m.csv"
    csv_path.write_text("case,label,dice\n<b>x</b>,1,0.5\nplain,1,0.9\nother,1,0.7\n")
    overlays = {
        "<b>x</b>": (
            tmp_path / "img.nii.gz",
            tmp_path / "ref.nii.gz",
            Volume(pred, spacing=(2.0, 1.0, 1.0)),
        ),
        "plain": (image, ref, ref),
    }
    out = write_html_report(csv_path, tmp_path / "r.html", overlays=overlays, worst=3)
    text = out.read_text()
    assert "<b>x</b>" not in text and "&lt;b&gt;x&lt;/b&gt;" in text
    page = parse(out)
    assert len(page.images) == 1 + 2 * 2  # dice plot; reference + prediction for two cases
    assert "no images" in page.tables[-1]["text"]


def test_bad_inputs(tmp_path: Path) -> None:
    (tmp_path / "nocase.csv").write_text("label,dice\n1,0.5\n")
    with pytest.raises(InputError, match="'case'"):
        write_html_report(tmp_path / "nocase.csv", tmp_path / "r.html")
    (tmp_path / "empty.csv").write_text("case,label,dice\n")
    with pytest.raises(InputError, match="no rows"):
        write_html_report(tmp_path / "empty.csv", tmp_path / "r.html")
    with pytest.raises(InputError, match="cannot read"):
        write_html_report(tmp_path / "missing.csv", tmp_path / "r.html")
    ok = write_table(tmp_path / "ok.csv", 0.0, 0)
    with pytest.raises(InputError, match="accuracy"):
        write_html_report(ok, tmp_path / "r.html", metrics=["accuracy"])
    with pytest.raises(InputError, match="worst_metric"):
        write_html_report(ok, tmp_path / "r.html", worst_metric="nsd")
    with pytest.raises(InputError, match="overlays"):
        write_html_report(ok, tmp_path / "r.html", overlays={"case_00": ("a", "b")})
    assert not (tmp_path / "r.html").exists()


CHECK_SCRIPT = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  document.body.dataset.images = imgs.length;
  document.body.dataset.decoded = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.tables = document.querySelectorAll('table').length;
  document.body.dataset.width = Math.max(...imgs.map(i => i.getBoundingClientRect().width));
});
</script></body>"""


@pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="Debian's chromium is not installed (apt install chromium)",
)
def test_renders_in_headless_chromium(tmp_path: Path) -> None:
    a = write_table(tmp_path / "a.csv", 0.03, 4)
    b = write_table(tmp_path / "b.csv", 0.0, 5)
    out = write_html_report(a, tmp_path / "r.html", compare_csv=b)
    # A copy with a script that records, once loaded, what the browser decoded and laid out.
    probe = tmp_path / "probe.html"
    probe.write_text(out.read_text().replace("</body>", CHECK_SCRIPT))
    dom = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", probe.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    page = Page()
    page.feed(dom)
    body = dom[dom.index("<body") : dom.index(">", dom.index("<body"))]
    attrs = dict(part.split("=", 1) for part in body.split()[1:])
    assert attrs["data-images"].strip('"') == "2"
    assert attrs["data-decoded"].strip('"') == "2"
    assert attrs["data-tables"].strip('"') == str(1 + 2 + 2)  # summary, stats x2, worst x2
    assert float(attrs["data-width"].strip('"')) > 300
    assert {t.get("class") for t in page.tables} == {"summary", "stats", "worst"}
