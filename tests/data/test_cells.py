"""Cells that would poison a run are refused at load, naming file, row and column (issue 12).

Items: float32-overflowing and infinite cells (4), an unterminated CSV quote, a class called
`NA`, missing values with `missing="drop" | "mean" | "error"`, over-long JSON numbers (12).
"""

from __future__ import annotations

import numpy as np
import pytest

from chainrule import data
from chainrule.data import DataError

pytest.importorskip("pandas")


def write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("cell", ["1e39", "-3.5e38"])
def test_a_feature_float32_cannot_hold_is_refused_naming_the_cell(tmp_path, cell):
    path = write(tmp_path / "big.csv", f"a,b,y\n1,2,0\n3,{cell},1\n")
    with pytest.raises(DataError) as e:
        data.from_csv(path)
    assert str(e.value).startswith(f"{path}: value ")
    assert "in column 'b' at line 3 is too large for float32" in str(e.value)
    # a 400-digit number too
    path = write(tmp_path / "huge.csv", "a,b,y\n1,2,0\n3," + "1" * 400 + ",1\n")
    with pytest.raises(DataError, match="column 'b' at line 3 is too large for float32"):
        data.from_csv(path)


def test_a_regression_target_float32_cannot_hold_is_refused(tmp_path):
    path = write(tmp_path / "big.csv", "a,y\n1,0.5\n3,1e39\n")
    with pytest.raises(DataError, match=r"target value 1e\+39 in column 'y' at line 3"):
        data.from_csv(path, task="regression")


def test_a_huge_json_integer_is_a_cell_error_not_a_traceback(tmp_path):
    path = write(tmp_path / "big.json", '[{"a": 1, "y": 0}, {"a": ' + "9" * 400 + ', "y": 1}]')
    with pytest.raises(DataError, match=r"column 'a' at record \[1\] is too large for float32"):
        data.from_json(path)
    path = write(tmp_path / "huge.json", '[{"a": ' + "9" * 5000 + ', "y": 1}]')
    with pytest.raises(DataError, match=f"{path}: invalid JSON: .*digits"):
        data.from_json(path)


def test_an_unterminated_quote_names_the_file(tmp_path):
    path = write(tmp_path / "q.csv", 'a,b\n1,"x\n2,3\n')
    with pytest.raises(DataError) as e:
        data.from_csv(path, target=None)
    assert str(e.value).startswith(f"{path}: cannot parse CSV: ")
    assert "quote that is never closed" in str(e.value)


def test_a_class_called_NA_is_a_class(tmp_path):
    path = write(tmp_path / "na.csv", "x,label\n1,NA\n2,ok\n3,NA\n")
    ds = data.from_csv(path)
    assert ds.classes == ["NA", "ok"] and ds.y.tolist() == [0, 1, 0]
    # an empty target cell is still missing
    path = write(tmp_path / "empty.csv", "x,label\n1,NA\n2,\n")
    with pytest.raises(DataError, match="missing target value in column 'label' at line 3"):
        data.from_csv(path)


HOLES = "a,b,y\n1,10,0\n,20,1\n3,NA,0\n5,40,\n7,50,1\n"


def test_missing_error_is_the_default_and_says_how_to_drop_or_fill(tmp_path):
    path = write(tmp_path / "h.csv", HOLES)
    with pytest.raises(DataError) as e:
        data.from_csv(path)
    message = str(e.value)
    assert "missing value in column 'a' at line 3" in message
    assert "missing='drop' or 'mean'" in message and "--missing" in message


def test_missing_drop_drops_rows_with_any_hole(tmp_path):
    path = write(tmp_path / "h.csv", HOLES)
    ds = data.from_csv(path, missing="drop")
    np.testing.assert_allclose(ds.X, [[1, 10], [7, 50]])
    assert ds.y.tolist() == [0, 1]
    ds = data.load(str(path), missing="drop")
    assert len(ds) == 2
    # row labels still point at the file's lines after the drop
    bad = write(tmp_path / "b.csv", "a,y\n,0\n1,0\nzz,1\n")
    with pytest.raises(DataError, match="line 4 has 'zz'"):
        data.from_csv(bad, missing="drop")


def test_missing_mean_fills_features_with_the_column_mean(tmp_path):
    path = write(tmp_path / "h.csv", HOLES)
    ds = data.from_csv(path, missing="mean")
    # the row without a target goes; a = mean(1, 3, 5, 7) = 4, b = mean(10, 20, 40, 50) = 30
    np.testing.assert_allclose(ds.X, [[1, 10], [4, 20], [3, 30], [7, 50]])
    assert ds.y.tolist() == [0, 1, 0, 1]


def test_missing_policy_is_checked(tmp_path):
    path = write(tmp_path / "h.csv", HOLES)
    with pytest.raises(ValueError, match="missing must be 'error', 'drop' or 'mean'"):
        data.from_csv(path, missing="zero")
    with pytest.raises(DataError, match="every row has a missing value"):
        data.from_csv(write(tmp_path / "all.csv", "a,y\n,0\n,1\n"), missing="drop")
    with pytest.raises(DataError, match="no values to take a mean of"):
        data.from_csv(write(tmp_path / "all2.csv", "a,b,y\n,1,0\n,2,1\n"), missing="mean")
