"""`chainrule train|evaluate|predict` on images: a folder of class folders (the digits written
out as PNG files), a CSV list of image paths, the built-in digits as images; the CNN and the
small ResNet; and the errors for unreadable images, mixed sizes and empty class folders."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from cli_helpers import one_error_line, run

pytest.importorskip("PIL")
pytest.importorskip("sklearn")
pd = pytest.importorskip("pandas")


def write_digits(folder, limit=None):
    """scikit-learn's digits as 8x8 grey PNG files, one sub-folder per class."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    n = len(digits.images) if limit is None else limit
    for i in range(n):
        klass = folder / str(digits.target[i])
        klass.mkdir(parents=True, exist_ok=True)
        pixels = np.round(digits.images[i] * 255 / 16).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(klass / f"{i:04d}.png")
    return folder


@pytest.fixture(scope="module")
def digit_pngs(tmp_path_factory):
    return write_digits(tmp_path_factory.mktemp("digits") / "digits")


@pytest.fixture(scope="module")
def cnn_run(digit_pngs, tmp_path_factory):
    """The done-when run: `chainrule train --data DIR --model cnn` on the digits PNG folder."""
    out = tmp_path_factory.mktemp("runs") / "cnn"
    start = time.perf_counter()
    from chainrule import cli

    status = cli.main(
        ["train", "--data", str(digit_pngs), "--model", "cnn", "--out", str(out)]
        + ["--epochs", "20", "--patience", "5", "--no-progress", "--seed", "0"]
    )
    seconds = time.perf_counter() - start
    print(f"cnn on the digits PNG folder: {seconds:.1f} s")  # reported, never asserted
    assert status == 0
    return out


def test_cnn_on_a_png_folder_reaches_097(cnn_run):
    metrics = json.loads((cnn_run / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.97, metrics["test"]
    config = json.loads((cnn_run / "config.json").read_text())
    assert config["input"]["shape"] == [8, 8, 1]
    assert config["input"]["mode"] == "L"
    assert config["model"]["kind"] == "cnn"
    assert config["classes"] == [str(d) for d in range(10)]


def test_evaluate_and_predict_on_the_folder_and_files(cnn_run, digit_pngs, capsys, tmp_path):
    status, out, err = run(
        ["evaluate", cnn_run, "--data", digit_pngs, "--split", "test", "--json"], capsys
    )
    assert status == 0, err
    figures = json.loads(out)
    saved = json.loads((cnn_run / "metrics.json").read_text())["test"]
    assert figures["accuracy"] == pytest.approx(saved["accuracy"])
    files = [digit_pngs / "3" / "0003.png", digit_pngs / "7" / "0007.png"]
    status, out, err = run(["predict", cnn_run, *files, "--output", tmp_path / "p.csv"], capsys)
    assert status == 0, err
    table = pd.read_csv(tmp_path / "p.csv")
    assert list(table.columns[:2]) == ["path", "prediction"]
    assert [c for c in table.columns if c.startswith("prob_")] == [f"prob_{d}" for d in range(10)]
    assert table["path"].tolist() == [str(f) for f in files]
    assert table["prediction"].tolist() == [3, 7]
    probs = table[[f"prob_{d}" for d in range(10)]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    status, out, err = run(["predict", cnn_run, "--data", digit_pngs / "3"], capsys)
    assert status == 0, err
    table = pd.read_csv(pd.io.common.StringIO(out))
    assert len(table) == len(list((digit_pngs / "3").iterdir()))
    assert (table["prediction"] == 3).mean() > 0.9


def test_resnet_and_mlp_on_digits_as_images(tmp_path, capsys):
    for model in ("resnet", "mlp"):
        out = tmp_path / model
        argv = ["train", "--data", "digits", "--model", model, "--out", out]
        argv += ["--epochs", "1", "--no-progress", "--hidden", "16"]
        if model == "resnet":
            argv += ["--image-size", "12"]  # the digits upscaled from 8x8
        if model == "mlp":
            # digits stays a table for the MLP; as images it needs a folder
            argv[2] = write_digits(tmp_path / "few", limit=200)
        status, _, err = run(argv, capsys)
        assert status == 0, err
        config = json.loads((out / "config.json").read_text())
        assert config["model"]["kind"] == model
        assert config["input"]["shape"] == ([12, 12, 1] if model == "resnet" else [8, 8, 1])
        status, text, err = run(["evaluate", out, "--data", argv[2], "--json"], capsys)
        assert status == 0, err
        assert 0 <= json.loads(text)["accuracy"] <= 1


def test_csv_list_of_images_with_resizing(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = []
    (tmp_path / "img").mkdir()
    for i in range(40):
        bright = i % 2
        size = (10, 12) if i % 3 else (14, 9)  # mixed sizes: --image-size resizes
        pixels = (rng.uniform(0, 0.3, size) + 0.6 * bright) * 255
        Image.fromarray(pixels.astype(np.uint8), mode="L").convert("RGB").save(
            tmp_path / "img" / f"{i}.jpg"
        )
        rows.append({"file": f"img/{i}.jpg", "label": "light" if bright else "dark"})
    pd.DataFrame(rows).to_csv(tmp_path / "list.csv", index=False)
    argv = ["train", "--data", tmp_path / "list.csv", "--model", "cnn", "--out", tmp_path / "r"]
    argv += ["--epochs", "2", "--no-progress"]
    status, _, err = run(argv, capsys)
    one_error_line(status, err, "images of different sizes", "--image-size")
    status, _, err = run([*argv, "--image-size", "8x6"], capsys)
    assert status == 0, err
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["input"]["shape"] == [8, 6, 3]
    assert config["input"]["mode"] == "RGB"
    assert config["classes"] == ["dark", "light"]


def test_image_errors_name_the_file_and_the_fix(tmp_path, capsys):
    folder = write_digits(tmp_path / "d", limit=30)
    (folder / "3" / "broken.png").write_bytes(b"not a png at all")
    argv = ["train", "--data", folder, "--model", "cnn", "--out", tmp_path / "r", "--epochs", "1"]
    status, _, err = run(argv, capsys)
    one_error_line(status, err, "broken.png", "cannot read the image")
    (folder / "3" / "broken.png").unlink()
    (folder / "empty").mkdir()
    status, _, err = run(argv, capsys)
    one_error_line(status, err, "empty", "holds no images")
    (folder / "empty").rmdir()
    status, _, err = run(["train", "--data", "iris", "--model", "cnn"], capsys)
    one_error_line(status, err, "--model cnn takes images")
    status, _, err = run(["train", "--data", folder, "--image-size", "0"], capsys)
    one_error_line(status, err, "--image-size")
    status, _, err = run(["train", "--model", "cnn"], capsys)
    one_error_line(status, err, "arguments are required: --data")


def test_augment_is_seeded_and_off_for_evaluation():
    import chainrule.core as mx
    from chainrule.cli.images import AugmentedImages

    X = np.arange(2 * 8 * 8, dtype=np.float32).reshape(2, 8, 8, 1)
    data = AugmentedImages(X, np.array([0, 1]))
    mx.random.seed(3)
    a, _ = data.get_batch(np.array([0, 1]))
    mx.random.seed(3)
    b, _ = data.get_batch(np.array([0, 1]))
    c, _ = data.get_batch(np.array([0, 1]))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(b), np.asarray(c))
    assert not np.array_equal(np.asarray(a), X)
    # every augmented pixel is one of the image's own values (crop, flip and rotation move
    # pixels, never invent them)
    assert set(np.asarray(a)[0].ravel()) <= set(X[0].ravel())


def test_predict_and_evaluate_errors_on_images(cnn_run, digit_pngs, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG but not really")
    status, _, err = run(["predict", cnn_run, digit_pngs / "1" / "0001.png", bad], capsys)
    one_error_line(status, err, "bad.png", "cannot read the image")
    status, _, err = run(["predict", cnn_run, tmp_path / "absent.png"], capsys)
    one_error_line(status, err, "absent.png", "no such image file")
    status, _, err = run(["predict", cnn_run], capsys)
    one_error_line(status, err, "give either --data")
    # a class the run never saw
    other = write_digits(tmp_path / "other", limit=12)
    (other / "7").rename(other / "seven")
    status, _, err = run(["evaluate", cnn_run, "--data", other], capsys)
    one_error_line(status, err, "'seven'", "not among the classes")
    # images of another size are resized to the run's; colour images become grey
    from PIL import Image

    big = tmp_path / "big.png"
    Image.open(digit_pngs / "0" / "0000.png").convert("RGB").resize((32, 32)).save(big)
    status, out, err = run(["predict", cnn_run, big], capsys)
    assert status == 0, err
    assert out.splitlines()[1].split(",")[1] == "0"


def test_mixed_grey_and_colour_images_are_read_as_rgb(tmp_path):
    from PIL import Image

    from chainrule.cli.images import read_images

    grey = tmp_path / "g.png"
    colour = tmp_path / "c.png"
    Image.new("L", (4, 3), 128).save(grey)
    Image.new("RGB", (4, 3), (255, 0, 0)).save(colour)
    X, mode = read_images([str(grey), str(colour)], None)
    assert mode == "RGB" and X.shape == (2, 3, 4, 3)
    np.testing.assert_allclose(X[0], 128 / 255)
    np.testing.assert_allclose(X[1, ..., 0], 1.0)
    X, mode = read_images([str(grey)], None)
    assert mode == "L" and X.shape == (1, 3, 4, 1)


def test_export_refuses_an_image_run_in_one_line(cnn_run, tmp_path, capsys):
    pytest.importorskip("onnx")
    status, _, err = run(["export", cnn_run, "--onnx", tmp_path / "m.onnx"], capsys)
    one_error_line(status, err, "a run trained on images")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["input"].update(shape=[8, 8]), "input.shape"),
        (lambda c: c["input"].update(mode="CMYK"), "input.mode"),
        (lambda c: c["input"].update(std=[1.0, 2.0]), "input.std"),
        (lambda c: c["model"].update(kind="vgg"), "model.kind"),
        (lambda c: c.update(classes=["a"]), "1 classes for a model of 10 outputs"),
    ],
)
def test_a_damaged_image_config_is_one_line(cnn_run, digit_pngs, tmp_path, capsys, edit, message):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(cnn_run, copy)
    config = json.loads((copy / "config.json").read_text())
    edit(config)
    (copy / "config.json").write_text(json.dumps(config))
    status, _, err = run(["evaluate", copy, "--data", digit_pngs], capsys)
    one_error_line(status, err, "config.json", message, "edited by hand")
