"""Every run's report.html, as a user sees it: opened in a real headless browser (Debian's
Chromium; `.ci/run` installs it and sets CHAINRULE_REQUIRE_CHROMIUM=1, so there the test fails
instead of skipping), rendered without console errors, with its images and tables in the DOM,
and a screenshot kept as a test artifact (build/test-artifacts/). The numbers behind the
figures are checked against scikit-learn's."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import ROOT, one_error_line, run

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")
from sklearn import metrics as skm  # noqa: E402

from chainrule.cli.report import classification_figures, pr_curve, roc_curve  # noqa: E402

ARTIFACTS = Path(os.environ.get("CHAINRULE_ARTIFACTS", ROOT / "build" / "test-artifacts"))
QUICK = ["--epochs", "6", "--hidden", "16", "--no-progress", "--seed", "0"]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CHAINRULE_REQUIRE_CHROMIUM"):
        pytest.fail("CHAINRULE_REQUIRE_CHROMIUM is set but no chromium binary is on PATH")
    pytest.skip("no chromium binary (apt-get install chromium)")


def _browse(page: Path, screenshot: Path | None = None) -> tuple[str, list[str]]:
    """(the DOM after rendering, console messages) of `page` in headless Chromium."""
    browser = _chromium()
    common = [
        browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-extensions", "--enable-logging=stderr", "--v=0", "--window-size=1200,2600",
        f"--user-data-dir={page.parent / '.chromium-profile'}",
    ]  # fmt: skip
    dom = subprocess.run(
        [*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        shot = subprocess.run(
            [*common, f"--screenshot={screenshot}", page.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert shot.returncode == 0, shot.stderr[-2000:]
        assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return dom.stdout, console


def test_the_console_check_sees_errors(tmp_path):
    """The check below can fail: a page that logs an error is caught."""
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>console.error('broken figure')</script></body></html>")
    _, console = _browse(page)
    assert any("broken figure" in line for line in console), console


def _images(dom: str) -> list[bytes]:
    sources = re.findall(r'<img [^>]*src="([^"]+)"', dom)
    assert sources
    out = []
    for src in sources:
        assert src.startswith("data:image/png;base64,"), src[:60]  # embedded, no network
        out.append(base64.b64decode(src.split(",", 1)[1]))
    return out


def _test_split(run_dir: Path):
    """The test split's targets and the model's outputs, recomputed from the run."""
    from chainrule.cli.config import read_run
    from chainrule.cli.tables import load_for_run, make_dataset
    from chainrule.cli.train import split_rows
    from chainrule.train import predict

    config, model, scaler = read_run(str(run_dir))
    ds, y = load_for_run(config["data"], config, with_target=True, missing="error")
    info = config["split"]
    labels = y if info["stratified"] else None
    _, _, test = split_rows(len(ds), info["val_split"], info["test_split"], info["seed"], labels)
    out = np.asarray(predict(model, make_dataset(scaler.transform(ds.X[test]), None)).numpy())
    return y[test], out


def test_classification_report_in_a_browser_and_against_scikit_learn(tmp_path, capsys):
    out = tmp_path / "cancer"
    status, stdout, err = run(["train", "--data", "breast_cancer", "--out", out, *QUICK], capsys)
    assert status == 0, err
    assert str(out / "report.html") in stdout
    for name in ("report.html", "confusion_matrix.png", "roc_curve.png", "pr_curve.png"):
        assert (out / name).is_file(), name
    dom, console = _browse(out / "report.html", ARTIFACTS / "report-classification.png")
    assert console == [], console
    pngs = _images(dom)
    assert len(pngs) == 4  # curves, confusion matrix, ROC, PR
    assert (out / "confusion_matrix.png").read_bytes() in pngs
    for cls in ("data-summary", "metrics", "confusion-matrix", "per-class", "model-summary"):
        assert f'class="{cls}"' in dom, cls
    assert "chainrule train --data breast_cancer" in dom
    assert "http://" not in dom and "https://" not in dom

    y, outputs = _test_split(out)
    pred = outputs.argmax(axis=1)
    per_class = json.loads((out / "metrics.json").read_text())["per_class"]
    assert per_class["classes"] == ["malignant", "benign"]
    np.testing.assert_array_equal(per_class["confusion_matrix"], skm.confusion_matrix(y, pred))
    p, r, f, s = skm.precision_recall_fscore_support(y, pred, zero_division=0)
    np.testing.assert_allclose(per_class["precision"], p)
    np.testing.assert_allclose(per_class["recall"], r)
    np.testing.assert_allclose(per_class["f1"], f)
    np.testing.assert_array_equal(per_class["support"], s)
    z = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    score = z[:, 1] / z.sum(axis=1)
    assert per_class["roc_auc"] == pytest.approx(skm.roc_auc_score(y, score), rel=1e-6)
    assert per_class["average_precision"] == pytest.approx(
        skm.average_precision_score(y, score), rel=1e-6
    )
    # `chainrule report` rebuilds the same page
    before = (out / "report.html").read_bytes()
    (out / "report.html").unlink()
    status, _, err = run(["report", out], capsys)
    assert status == 0, err
    assert (out / "report.html").read_bytes() == before


def test_regression_report_in_a_browser(tmp_path, capsys):
    out = tmp_path / "diabetes"
    status, _, err = run(["train", "--data", "diabetes", "--out", out, *QUICK], capsys)
    assert status == 0, err
    dom, console = _browse(out / "report.html", ARTIFACTS / "report-regression.png")
    assert console == [], console
    pngs = _images(dom)
    assert (out / "predicted_vs_actual.png").read_bytes() in pngs
    assert (out / "residuals.png").read_bytes() in pngs
    assert "confusion" not in dom
    assert "per_class" not in json.loads((out / "metrics.json").read_text())


def test_report_of_an_image_run_and_errors(tmp_path, capsys):
    status, _, err = run(["train", "--data", "digits", "--model", "cnn", "--out", tmp_path / "d"]
                         + ["--epochs", "1", "--no-progress"], capsys)  # fmt: skip
    assert status == 0, err
    page = (tmp_path / "d" / "report.html").read_text()
    assert "images" in page and "8x8, grey" in page and "cnn" in page
    per_class = json.loads((tmp_path / "d" / "metrics.json").read_text())["per_class"]
    assert len(per_class["confusion_matrix"]) == 10
    status, _, err = run(["report", tmp_path / "missing"], capsys)
    one_error_line(status, err, "no such run directory")


@pytest.mark.parametrize("seed", range(4))
def test_curves_and_per_class_numbers_equal_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    score = np.round(rng.random(300) * 0.6 + 0.3 * y, 2)  # rounded: many ties
    fpr, tpr, auc = roc_curve(y, score)
    sk_fpr, sk_tpr, _ = skm.roc_curve(y, score, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    assert auc == pytest.approx(skm.roc_auc_score(y, score))
    precision, recall, ap = pr_curve(y, score)
    sk_p, sk_r, _ = skm.precision_recall_curve(y, score)
    np.testing.assert_allclose(precision, sk_p)
    np.testing.assert_allclose(recall, sk_r)
    assert ap == pytest.approx(skm.average_precision_score(y, score))
    true, pred = rng.integers(0, 4, 100), rng.integers(0, 4, 100)
    pred[pred == 3] = 2  # class 3 never predicted: precision 0, as zero_division=0
    figures = classification_figures(true, pred, 4)
    np.testing.assert_array_equal(figures["confusion_matrix"], skm.confusion_matrix(true, pred))
    p, r, f, _ = skm.precision_recall_fscore_support(true, pred, zero_division=0)
    np.testing.assert_allclose(figures["precision"], p)
    np.testing.assert_allclose(figures["recall"], r)
    np.testing.assert_allclose(figures["f1"], f)
