"""The torch-free checkpoint reader: genuine torch bytes, both formats, and its safety."""
import os
import pickle
import zipfile

import numpy as np
import pytest

from attrkit.models import torch_checkpoint as T
from torch_writer import _global, _pickle, _str, _tuple, write_legacy, write_state_dict, \
    write_zip

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


@pytest.fixture(scope="module")
def expected():
    with np.load(os.path.join(DATA, "torch_tiny_expected.npz"), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _same(state, expected):
    assert list(state) == list(expected)
    for k, v in expected.items():
        assert state[k].dtype == v.dtype, k
        np.testing.assert_array_equal(state[k], v, err_msg=k)
        assert state[k].flags.c_contiguous and state[k].flags.owndata


# ------------------------------------------------------------ genuine torch.save files

@pytest.mark.parametrize("name", ["torch_tiny.pth", "torch_tiny_legacy.pth"])
def test_real_torch_files_read_exactly(name, expected):
    """Written by torch 2.13 (tests/make_torch_fixtures.py): float32, float16, int64,
    bfloat16, a transposed view and a view at a storage offset, and the state dict's
    _metadata that torch pickles along."""
    path = os.path.join(DATA, name)
    _same(T.read_torch_checkpoint(path), expected)
    _same(T.read_torch_state_dict(path), expected)
    assert expected["extra.transposed"].shape == (4, 3)
    assert expected["extra.half"].dtype == np.float16
    assert expected["extra.bf16"].tolist() == [1.5, -0.375, 29952.0]  # bf16 rounds 3e4


def test_real_legacy_file_through_the_legacy_reader(expected):
    _same(T.read_legacy_torch_checkpoint(os.path.join(DATA, "torch_tiny_legacy.pth")),
          expected)
    with pytest.raises(ValueError, match="zip-format PyTorch checkpoint"):
        T.read_legacy_torch_checkpoint(os.path.join(DATA, "torch_tiny.pth"))


def test_real_wrapped_checkpoint_is_unwrapped(expected):
    path = os.path.join(DATA, "torch_tiny_wrapped.pth")
    whole = T.read_torch_checkpoint(path)
    assert whole["epoch"] == 3 and list(whole["state_dict"])[0] == "module.0.weight"
    _same(T.read_torch_state_dict(path), expected)


# ------------------------------------------------------------ the test writer = torch

@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_writer_round_trip(tmp_path, fmt, expected):
    """The tests' writer emits what torch emits: the same arrays read back the same."""
    arrays = {k: v for k, v in expected.items() if k != "extra.bf16"}
    path = tmp_path / "w.pth"
    write_state_dict(path, arrays, fmt)
    _same(T.read_torch_checkpoint(path), arrays)
    if fmt == "zip":
        real = zipfile.ZipFile(os.path.join(DATA, "torch_tiny.pth")).namelist()
        ours = zipfile.ZipFile(path).namelist()
        strip = [n.split("/", 1)[1] for n in real]
        assert [n.split("/", 1)[1] for n in ours] == strip


def test_zip_views_offsets_and_wrapping(tmp_path):
    s0 = np.arange(6, dtype=np.float32) * 1.5 - 2
    tensors = {"module.a": ("FloatStorage", "0", 0, (2, 3), (3, 1)),
               "module.a_t": ("FloatStorage", "0", 0, (3, 2), (1, 3)),
               "module.tail": ("FloatStorage", "0", 1, (2, 2), (1, 2))}
    path = tmp_path / "any_name.pt"
    write_zip(path, tensors, {"0": s0}, wrap="state_dict", root="archive")
    state = T.read_torch_state_dict(path)
    assert list(state) == ["a", "a_t", "tail"]
    np.testing.assert_array_equal(state["a_t"], s0.reshape(2, 3).T)
    np.testing.assert_array_equal(state["tail"], [[s0[1], s0[3]], [s0[2], s0[4]]])
    assert T.read_torch_checkpoint(path)["epoch"] == 7


# ------------------------------------------------------------ bad files

def test_zip_errors(tmp_path):
    path = tmp_path / "bad.pth"
    write_zip(path, {"w": ("FloatStorage", "0", 2, (2, 3), (3, 1))},
              {"0": np.zeros(6, np.float32)})
    with pytest.raises(ValueError, match="tensor w: .*reach element 7 of a storage of 6"):
        T.read_torch_checkpoint(path)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x/other.txt", b"")
    with pytest.raises(ValueError, match=r"expected a zip-format PyTorch checkpoint .*found 0 "
                                         r"top-level \*/data.pkl"):
        T.read_torch_checkpoint(path)
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="cannot open it as a zip archive"):
        T.read_torch_checkpoint(path)


def test_zip_missing_storage_entry(tmp_path):
    path = tmp_path / "m.pth"
    numel = {"0": 4}
    from torch_writer import pickle_state
    # The pickle names storage 0; the archive has no data/0.
    pkl = pickle_state({"w": ("FloatStorage", "0", 0, (4,), (1,))}, numel, legacy=False)
    write_zip(path, {}, {}, state_pickle=pkl)
    with pytest.raises(ValueError, match="storage 0 has no entry m/data/0"):
        T.read_torch_checkpoint(path)


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pth"
    write_zip(path, {}, {}, state_pickle=_pickle(b"]" + b"(" + _str("x") + b"e"))
    with pytest.raises(ValueError, match=r"expected a state dict .* got a list"):
        T.read_torch_state_dict(path)


@pytest.mark.parametrize("writer", [write_zip, write_legacy])
def test_forbidden_globals_are_named_and_nothing_runs(tmp_path, writer):
    flag = tmp_path / "pwned"
    evil = pickle.dumps({"w": _Payload(os.system, "touch {}".format(flag))}, protocol=2)
    path = tmp_path / "evil.pth"
    writer(path, {}, {}, state_pickle=evil)
    with pytest.raises(pickle.UnpicklingError, match=r"refused to load global "
                                                     r"(posix|nt)\.system"):
        T.read_torch_checkpoint(path)
    assert not flag.exists()
    # A whole model pickled (torch.save(model)) names its class: refused, by name.
    body = _global("torchvision.models.resnet", "ResNet") + _tuple([]) + b"R"
    writer(path, {}, {}, state_pickle=_pickle(body))
    with pytest.raises(T.RefusedGlobalError, match="torchvision.models.resnet.ResNet"):
        T.read_torch_checkpoint(path)


class _Payload:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)
