from pathlib import Path

import pytest

from dermeval.params import ParamsError, load_params

REPO = Path(__file__).resolve().parents[2]


def test_repo_params_load():
    p = load_params(REPO / "params.yaml")
    assert p.prepare.source == "auto" and p.data.prepared == "data/prepared"


@pytest.mark.parametrize("text,key", [
    ("prepare:\n  sedd: 3\n", "prepare.sedd"),
    ("prepare:\n  cases: many\n", "prepare.cases"),
    ("prepare:\n  source: s3\n", "prepare.source"),
    ("bogus:\n  a: 1\n", "bogus"),
])
def test_bad_params_name_the_key(tmp_path, text, key):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match=key.replace(".", r"\.")):
        load_params(path)
