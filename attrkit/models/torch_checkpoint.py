"""PyTorch checkpoints read without torch, through an unpickler that runs no code.

``torch.save`` writes one of two formats, and both are read here:

- the **zip** format (the default of torch >= 1.6): a zip archive whose single top folder
  (named after the file, or ``archive``) holds ``data.pkl`` (the pickled object, its
  tensors as ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)``),
  ``byteorder`` (``little`` or ``big``), and one file ``data/<key>`` of raw bytes per
  storage; a storage is the persistent id ``('storage', torch.<Type>Storage, key,
  location, numel)``;
- the **legacy** format (torch < 1.6, or ``_use_new_zipfile_serialization=False``):
  pickle(magic number), pickle(protocol 1001), pickle(system info), pickle(object),
  pickle(list of storage keys), then per key an int64 element count and the raw data.

A pickle can name any Python callable, so loading an untrusted one with ``pickle`` can run
anything. :class:`RestrictedUnpickler` admits only what a tensor state dict needs:
``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` (replaced by a function
that records its arguments) and the ``torch.<Type>Storage`` names of ``STORAGE_DTYPES``.
Any other global raises :class:`RefusedGlobalError` naming it; nothing is imported or run.
(torchvision's published checkpoints and ``torch.save(model.state_dict(), path)`` need no
more: a state dict holds plain tensors, never ``nn.Parameter``.)

Public: :func:`read_torch_checkpoint` (either format, any picklable structure of dicts,
lists and numbers around the tensors), :func:`read_torch_state_dict` (the state dict of a
checkpoint, unwrapped from ``{'state_dict': ...}`` and a ``module.`` prefix), and
:func:`read_legacy_torch_checkpoint` (the legacy format only, as EfficientNet-Lite0 reads
its bundled file).
"""
import collections
import os
import pickle
import zipfile

import numpy as np

LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
LEGACY_PROTOCOL = 1001
ZIP_MAGIC = b"PK\x03\x04"
# torch storage type -> numpy dtype (little-endian; swapped when the file says big-endian).
# bfloat16 has no numpy dtype: its 16-bit patterns are widened to float32 exactly.
STORAGE_DTYPES = {
    "DoubleStorage": "<f8", "FloatStorage": "<f4", "HalfStorage": "<f2",
    "BFloat16Storage": "<u2",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2",
    "CharStorage": "<i1", "ByteStorage": "<u1", "BoolStorage": "|b1",
}
# Keys under which training scripts commonly wrap a state dict.
STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights")

# Error messages, kept as data so that tests match the same templates.
FORMAT_ERROR = ("{path}: expected a PyTorch checkpoint in the legacy (non-zip) format, "
                "{problem}")
ZIP_ERROR = "{path}: expected a zip-format PyTorch checkpoint (torch >= 1.6), {problem}"
ZIP_FORMAT_ERROR = ("{path}: this is a zip-format PyTorch checkpoint (the default of torch "
                    ">= 1.6); only the legacy format is read here. Re-save it with "
                    "torch.save(state_dict, path, _use_new_zipfile_serialization=False)")
REFUSED_GLOBAL_ERROR = ("refused to load global {module}.{name} from a checkpoint pickle: "
                        "only collections.OrderedDict, torch._utils._rebuild_tensor_v2 and "
                        "torch.<Type>Storage are allowed (the file may be malicious or not "
                        "a plain tensor state dict)")
PERSISTENT_ID_ERROR = ("unexpected persistent id {pid!r}: expected ('storage', "
                       "torch.<Type>Storage, key, location, numel)")
STATE_DICT_ERROR = ("{path}: expected a state dict (a dict from parameter names to tensors), "
                    "or a dict holding one under {keys}; got {actual}")


class RefusedGlobalError(pickle.UnpicklingError):
    """A checkpoint pickle named a global (or persistent id) outside the allowed few."""


class _StorageType:
    """Stands in for ``torch.<Type>Storage``: only its dtype is used."""

    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(STORAGE_DTYPES[name])


class _StorageRef:
    """A storage named by a persistent id; its data comes from elsewhere in the file."""

    def __init__(self, key, storage_type, numel, view_offset=0):
        self.key, self.storage_type = key, storage_type
        self.numel, self.view_offset = numel, view_offset


class _TensorRef:
    """What ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` means."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset = storage, offset
        self.size, self.stride = tuple(size), tuple(stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *unused):
    """Replacement for the torch function of that name: records the view, runs nothing."""
    if not isinstance(storage, _StorageRef):
        raise pickle.UnpicklingError("_rebuild_tensor_v2: expected a storage as first "
                                     "argument, got {!r}".format(type(storage).__name__))
    return _TensorRef(storage, storage_offset, size, stride)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for tensor checkpoints that refuses every global but three kinds.

    Allowed: ``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` (replaced by
    :func:`_rebuild_tensor_v2`, which only records its arguments) and the
    ``torch.<Type>Storage`` names of ``STORAGE_DTYPES`` (replaced by :class:`_StorageType`).
    No torch code is imported or run. Persistent ids ``('storage', type, key, location,
    numel[, view_metadata])`` become :class:`_StorageRef`; ``self.storages`` maps each
    key seen to its storage type.
    """

    def __init__(self, f):
        super().__init__(f)
        self.storages = {}

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise RefusedGlobalError(REFUSED_GLOBAL_ERROR.format(module=module, name=name))

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise RefusedGlobalError(PERSISTENT_ID_ERROR.format(pid=pid))
        _, storage_type, key, _location, numel = pid[:5]
        self.storages.setdefault(str(key), storage_type)
        view = pid[5] if len(pid) == 6 else None
        if view is not None:
            # A view of a larger storage (old torch): (view_key, offset, view_size).
            _view_key, offset, numel = view
            return _StorageRef(str(key), storage_type, int(numel), int(offset))
        return _StorageRef(str(key), storage_type, int(numel))


# ------------------------------------------------------------------ the two formats

def read_torch_checkpoint(path):
    """Whatever ``torch.save`` stored in ``path`` (zip or legacy format), tensors as arrays.

    Args:
      path: the ``.pth`` / ``.pt`` file.
    Returns:
      The saved object with every tensor replaced by a numpy array (own memory,
      C-contiguous, the tensor's shape and dtype: ``float32`` for ``FloatStorage``,
      ``float16`` for ``HalfStorage``, ``float32`` for ``BFloat16Storage``, ``int64`` for
      ``LongStorage``, ...); dicts keep their order.
    Raises:
      FileNotFoundError: no such file.
      ValueError: neither format, or a truncated or inconsistent file.
      RefusedGlobalError (a pickle.UnpicklingError): the pickle names any other global or
        an unknown persistent id; nothing is imported or executed.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        zipped = f.read(4) == ZIP_MAGIC
    if zipped:
        obj, flats = _read_zip(path)
    else:
        obj, flats = _read_legacy(path)
    return _materialise(obj, flats, path)


def read_legacy_torch_checkpoint(path):
    """Read a state dict from a PyTorch checkpoint in the legacy (non-zip) format, without torch.

    Args:
      path: the ``.pth`` file.
    Returns:
      ``OrderedDict`` from parameter name to a numpy array (as :func:`read_torch_checkpoint`),
      in the file's order.
    Raises:
      FileNotFoundError: no such file.
      ValueError: not a legacy checkpoint (zip format, wrong magic or protocol, truncated
        data, a tensor outside its storage), or not a flat state dict.
      RefusedGlobalError (a pickle.UnpicklingError): a pickle names any other global or an
        unknown persistent id; nothing is imported or executed.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        if f.read(4) == ZIP_MAGIC:
            raise ValueError(ZIP_FORMAT_ERROR.format(path=path))
    state, flats = _read_legacy(path)
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, _TensorRef) for k, v in state.items()):
        raise ValueError(FORMAT_ERROR.format(
            path=path, problem="expected a dict from names to tensors (a state dict)"))
    return collections.OrderedDict(_materialise(state, flats, path))


def read_torch_state_dict(path):
    """The state dict of a checkpoint: name -> array, unwrapped and without ``module.``.

    Accepts a bare state dict, or a dict holding one under one of ``STATE_DICT_KEYS``
    (``{'state_dict': ..., 'epoch': 3}`` as training scripts save); a ``module.`` prefix
    on every key (``nn.DataParallel``) is removed.

    Raises:
      ValueError: no state dict found (the message says what the file holds), plus the
        errors of :func:`read_torch_checkpoint`.
    """
    obj = read_torch_checkpoint(path)
    state = _find_state_dict(obj)
    if state is None:
        raise ValueError(STATE_DICT_ERROR.format(
            path=path, keys=", ".join(map(repr, STATE_DICT_KEYS)), actual=_describe(obj)))
    if state and all(k.startswith("module.") for k in state):
        state = collections.OrderedDict((k[len("module."):], v) for k, v in state.items())
    return collections.OrderedDict(state)


def _is_state_dict(obj):
    return (isinstance(obj, dict) and obj and all(isinstance(k, str) for k in obj)
            and all(isinstance(v, np.ndarray) for v in obj.values()))


def _find_state_dict(obj):
    if _is_state_dict(obj):
        return obj
    if isinstance(obj, dict):
        for key in STATE_DICT_KEYS:
            if _is_state_dict(obj.get(key)):
                return obj[key]
    return None


def _describe(obj):
    if isinstance(obj, dict):
        keys = list(obj)[:6]
        return "a {} with keys {}{}".format(type(obj).__name__, keys,
                                            " ..." if len(obj) > 6 else "")
    return "a {}".format(type(obj).__name__)


def _load_pickle(f, path, what, template=FORMAT_ERROR):
    """The next pickle of ``f`` through :class:`RestrictedUnpickler`: (object, storages).

    A refused global propagates as :class:`RefusedGlobalError`; any other failure to parse
    becomes a ValueError saying which part of the format was expected.
    """
    unpickler = RestrictedUnpickler(f)
    try:
        return unpickler.load(), unpickler.storages
    except RefusedGlobalError:
        raise
    except Exception as exc:
        raise ValueError(template.format(
            path=path, problem="cannot read its {} ({}: {})".format(
                what, type(exc).__name__, exc))) from None


def _read_legacy(path):
    """(object with _TensorRef leaves, {storage key: flat array}) of a legacy file."""
    def fail(problem):
        return ValueError(FORMAT_ERROR.format(path=path, problem=problem))

    with open(path, "rb") as f:
        magic, _ = _load_pickle(f, path, "magic number")
        if magic != LEGACY_MAGIC:
            raise fail("got magic number {!r}, expected {:#x}".format(magic, LEGACY_MAGIC))
        protocol, _ = _load_pickle(f, path, "protocol version")
        if protocol != LEGACY_PROTOCOL:
            raise fail("got protocol {!r}, expected {}".format(protocol, LEGACY_PROTOCOL))
        sys_info, _ = _load_pickle(f, path, "system info")
        little = not isinstance(sys_info, dict) or sys_info.get("little_endian", True)
        obj, storages = _load_pickle(f, path, "state dict")
        keys, _ = _load_pickle(f, path, "list of storage keys")
        if not isinstance(keys, list):
            raise fail("expected a list of storage keys after the state dict")
        flats = {}
        count_dtype = np.dtype("<i8" if little else ">i8")
        for key in keys:
            raw = f.read(8)
            if len(raw) != 8:
                raise fail("the data of storage {} is truncated".format(key))
            numel = int(np.frombuffer(raw, count_dtype)[0])
            dtype = storages[key].dtype if key in storages else np.dtype("u1")
            data = f.read(numel * dtype.itemsize)
            if len(data) != numel * dtype.itemsize:
                raise fail("the data of storage {} is truncated".format(key))
            flats[key] = _flat(data, dtype, little, storages.get(key))
    return obj, flats


def _read_zip(path):
    """(object with _TensorRef leaves, {storage key: flat array}) of a zip-format file."""
    def fail(problem):
        return ValueError(ZIP_ERROR.format(path=path, problem=problem))

    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise fail("cannot open it as a zip archive ({})".format(exc)) from None
    with archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise fail("found {} top-level */data.pkl entries (expected 1) among {}".format(
                len(pickles), names[:8]))
        root = pickles[0][:-len("data.pkl")]                  # e.g. 'resnet18/'
        order = (archive.read(root + "byteorder").decode().strip()
                 if root + "byteorder" in names else "little")
        if order not in ("little", "big"):
            raise fail("byteorder {!r}: expected 'little' or 'big'".format(order))
        with archive.open(pickles[0]) as f:
            obj, storages = _load_pickle(f, path, "data.pkl", ZIP_ERROR)
        flats = {}
        for key, storage_type in storages.items():
            entry = root + "data/" + key
            if entry not in names:
                raise fail("storage {} has no entry {}".format(key, entry))
            data = archive.read(entry)
            if len(data) % storage_type.dtype.itemsize:
                raise fail("entry {} holds {} bytes, not a whole number of {}".format(
                    entry, len(data), storage_type.name))
            flats[key] = _flat(data, storage_type.dtype, order == "little", storage_type)
    return obj, flats


def _flat(data, dtype, little, storage_type):
    """Raw bytes -> 1-D array in native byte order (bfloat16 widened to float32)."""
    if not little:
        dtype = dtype.newbyteorder(">")
    flat = np.frombuffer(data, dtype).astype(dtype.newbyteorder("="), copy=False)
    if storage_type is not None and storage_type.name == "BFloat16Storage":
        flat = (flat.astype(np.uint32) << 16).view(np.float32)
    return flat


def _materialise(obj, flats, path, name="?"):
    """``obj`` with each _TensorRef replaced by its array (dicts, lists, tuples walked);
    ``name`` is the key of the innermost dict entry, for error messages."""
    if isinstance(obj, _TensorRef):
        if obj.storage.key not in flats:
            raise ValueError(FORMAT_ERROR.format(
                path=path, problem="tensor {} uses storage {} that has no data".format(
                    name, obj.storage.key)))
        return _strided_array(flats[obj.storage.key], obj, name)
    if isinstance(obj, dict):
        out = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
        for k, v in obj.items():
            out[k] = _materialise(v, flats, path, k)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v, flats, path, name) for v in obj)
    return obj


def _strided_array(flat, ref, name):
    """The array that tensor ``ref`` views in its storage's flat data (bounds checked)."""
    size, stride = ref.size, ref.stride
    offset = ref.offset + ref.storage.view_offset
    if len(size) != len(stride) or any(s < 0 for s in size) or any(s < 0 for s in stride):
        raise ValueError("tensor {}: bad size {} / stride {}".format(name, size, stride))
    if 0 in size:
        return np.zeros(size, flat.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if offset < 0 or last >= flat.size:
        raise ValueError("tensor {}: size {}, stride {} and offset {} reach element {} of a "
                         "storage of {}".format(name, size, stride, offset, last, flat.size))
    view = np.lib.stride_tricks.as_strided(
        flat[offset:], shape=size, strides=[s * flat.itemsize for s in stride],
        writeable=False)
    return np.array(view, order="C")  # own, C-contiguous copy
