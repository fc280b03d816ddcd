"""Write PyTorch checkpoints as ``torch.save`` does, without torch (a test helper).

The pickles are assembled from opcodes by hand (protocol 2, as torch writes them), so the
tests need no torch and share no code with the reader they check. Both formats:

- ``write_legacy``: pickle(magic), pickle(1001), pickle(sys info), pickle(state dict),
  pickle(storage keys), then per storage an int64 count and the raw little-endian data;
- ``write_zip``: ``<stem>/data.pkl``, ``.format_version``, ``.storage_alignment``,
  ``byteorder``, ``data/<key>``, ``version``, ``.data/serialization_id``, stored
  uncompressed, the entries in torch 2.x's order.

``write_state_dict(path, arrays, fmt)`` turns ``{name: ndarray}`` into either (one storage
per tensor, contiguous, as ``torch.save(model.state_dict())`` writes).
"""
import pickle
import struct
import zipfile

import numpy as np

LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
LEGACY_PROTOCOL = 1001
STORAGE_OF = {np.dtype("float32"): "FloatStorage", np.dtype("float64"): "DoubleStorage",
              np.dtype("float16"): "HalfStorage", np.dtype("int64"): "LongStorage",
              np.dtype("int32"): "IntStorage", np.dtype("uint8"): "ByteStorage",
              np.dtype("bool"): "BoolStorage"}


def _global(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _str(s):
    data = s.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def _int(i):
    return b"J" + struct.pack("<i", i)


def _tuple(items):
    return b"(" + b"".join(items) + b"t"


def _pickle(body):
    return b"\x80\x02" + body + b"."


def _tensor(storage_type, key, numel, offset, size, stride, legacy=True):
    """Opcodes of _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict()).

    The legacy persistent id has a sixth element (view metadata, None); the zip one has 5.
    """
    pid = [_str("storage"), _global("torch", storage_type), _str(key), _str("cpu"),
           _int(numel)] + ([b"N"] if legacy else [])
    args = _tuple([_tuple(pid) + b"Q", _int(offset), _tuple([_int(n) for n in size]),
                   _tuple([_int(s) for s in stride]), b"\x89",
                   _global("collections", "OrderedDict") + b")R"])
    return _global("torch._utils", "_rebuild_tensor_v2") + args + b"R"


def pickle_state(tensors, numel, legacy=True, wrap=None):
    """The pickle of an OrderedDict of tensors {name: (type, key, offset, size, stride)};
    ``wrap``: a key under which a plain dict holds it (``{'state_dict': ...}``)."""
    items = b"".join(_str(name) + _tensor(t, key, numel[key], off, size, stride, legacy)
                     for name, (t, key, off, size, stride) in tensors.items())
    body = _global("collections", "OrderedDict") + b")R(" + items + b"u"
    if wrap is not None:
        body = b"}(" + _str(wrap) + body + _str("epoch") + _int(7) + b"u"
    return _pickle(body)


def write_legacy(path, tensors, storages, magic=LEGACY_MAGIC, protocol=LEGACY_PROTOCOL,
                 state_pickle=None, wrap=None):
    """Write a legacy checkpoint.

    tensors: {name: (storage_type, key, offset, size, stride)}; storages: {key: 1-D array}
    in the order their data is written.
    """
    numel = {k: a.size for k, a in storages.items()}
    if state_pickle is None:
        state_pickle = pickle_state(tensors, numel, True, wrap)
    sys_info = {"protocol_version": 1001, "little_endian": True,
                "type_sizes": {"short": 2, "int": 4, "long": 4}}
    with open(path, "wb") as f:
        f.write(pickle.dumps(magic, protocol=2))
        f.write(pickle.dumps(protocol, protocol=2))
        f.write(pickle.dumps(sys_info, protocol=2))
        f.write(state_pickle)
        f.write(pickle.dumps(list(storages), protocol=2))
        for a in storages.values():
            f.write(struct.pack("<q", a.size))
            f.write(a.astype(a.dtype.newbyteorder("<")).tobytes())


def write_zip(path, tensors, storages, state_pickle=None, wrap=None, root=None):
    """Write a zip-format checkpoint (as torch >= 1.6); arguments as :func:`write_legacy`."""
    numel = {k: a.size for k, a in storages.items()}
    if state_pickle is None:
        state_pickle = pickle_state(tensors, numel, False, wrap)
    if root is None:
        root = str(path).replace("\\", "/").rsplit("/", 1)[-1].split(".")[0] or "archive"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(root + "/data.pkl", state_pickle)
        z.writestr(root + "/.format_version", b"1")
        z.writestr(root + "/.storage_alignment", b"64")
        z.writestr(root + "/byteorder", b"little")
        for key, a in storages.items():
            z.writestr(root + "/data/" + key, a.astype(a.dtype.newbyteorder("<")).tobytes())
        z.writestr(root + "/version", b"3\n")
        z.writestr(root + "/.data/serialization_id", b"0" * 40)


def write_state_dict(path, arrays, fmt="zip", wrap=None):
    """Save ``{name: ndarray}`` as torch would save the same tensors (one storage each)."""
    tensors, storages = {}, {}
    for i, (name, a) in enumerate(arrays.items()):
        a = np.ascontiguousarray(a)
        key = str(i)
        stride = tuple(s // a.itemsize for s in a.strides) if a.ndim else ()
        tensors[name] = (STORAGE_OF[a.dtype], key, 0, a.shape, stride)
        storages[key] = a.reshape(-1)
    writer = write_zip if fmt == "zip" else write_legacy
    writer(path, tensors, storages, wrap=wrap)
