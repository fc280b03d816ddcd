"""Shared fixtures: a fresh graph and session per test, the tiny conv net with every method
built once per module, the real default model once, and a researcher's own Keras model
trained once with a conversion cache of the session's own (helpers: tests/helpers.py)."""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.compat.v1.disable_eager_execution()


# ------------------------------------------------ the suite on xdist workers (pytest.ini)
# The suite runs on two worker processes. Work goes out a file at a time (so that a
# file's module fixtures are built once), except that the files which share an expensive
# session fixture go out as one unit and so run on one worker, which builds it once: the
# Keras families and the trained own model (with their conversion cache) are used by both
# files below. Those units and the Ray runs come first, heaviest first, so that two of them
# start at once and the small files fill in behind.
SHARED_UNITS = {"test_model_import.py": "keras_import",
                "test_own_model_scripts.py": "keras_import"}
FIRST = ("test_model_import.py", "test_own_model_scripts.py", "test_explain_dataset.py")


def work_unit(nodeid):
    """The unit of scheduling a test belongs to: its file, or its shared unit."""
    path = nodeid.split("::", 1)[0]
    return SHARED_UNITS.get(os.path.basename(path), path)


def pytest_xdist_make_scheduler(config, log):
    """Schedule by :func:`work_unit` (xdist's loadfile, with the shared units joined)."""
    from xdist.scheduler import LoadScopeScheduling

    class SharedUnits(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return work_unit(nodeid)

    return SharedUnits(config, log)


def pytest_collection_modifyitems(config, items):
    """The files of :data:`FIRST` first, in that order; the rest keep their order."""
    def rank(item):
        name = os.path.basename(str(item.fspath))
        return FIRST.index(name) if name in FIRST else len(FIRST)

    items[:] = [item for _, _, item in sorted(((rank(it), n, it) for n, it in enumerate(items)),
                                              key=lambda t: t[:2])]


def new_session(graph=None):
    """A session on its own graph, with thread counts small enough for 2-core CI."""
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=2,
                                      inter_op_parallelism_threads=1)
    return tf.compat.v1.Session(graph=graph or tf.Graph(), config=config)


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """No VGG16 weights anywhere: an empty working directory and no $HW3_VGG16_WEIGHTS."""
    import vgg16
    monkeypatch.delenv(vgg16.WEIGHTS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def sess():
    """A fresh graph, made the default for the test, and a session on it."""
    session = new_session()
    with session.graph.as_default():
        yield session
    session.close()


@pytest.fixture(scope="session")
def default_model():
    """The real bundled default model, built once per test run: (model, sess)."""
    from hw3_utils import get_model
    session = new_session()
    with session.graph.as_default():
        model = get_model(session, "efficientnet_lite0")
    yield model, session
    session.close()


@pytest.fixture(scope="session")
def sample_data(default_model):
    """The bundled sample photographs with the default model's predictions."""
    from hw3_utils import load_ImageNet
    model, session = default_model
    with session.graph.as_default():
        return load_ImageNet('bundled', model=model, sess=session)


@pytest.fixture(scope="module")
def conv():
    """One tiny conv net (5 classes, 16x16 images) with every method built once, shared by
    the tests that only construct and call (none counts ops, needs a fresh graph or
    changes CLONE_MODEL): (sess, model, methods). Sharing it keeps the suite fast: a fresh
    graph costs a clone of the model and new executors."""
    from hw3_attribution import RandomAttribution
    from helpers import all_methods, tensors
    from models import tiny_convnet
    graph = tf.Graph()
    with graph.as_default():
        session = tf.compat.v1.Session(graph=graph)
        model = tiny_convnet()
        methods = all_methods(session, model, 0)
        methods["random"] = (RandomAttribution(session, *tensors(model), 0), {})
    yield session, model, methods
    session.close()


# ----------------------------------------------- your own model (tests/own_model.py)

@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """A conversion cache of this session's own, in $HW3_CACHE_DIR."""
    from attrkit.models import model_import
    path = tmp_path_factory.mktemp("hw3_cache")
    old = os.environ.get(model_import.CACHE_ENV)
    os.environ[model_import.CACHE_ENV] = str(path)
    yield path
    if old is None:
        del os.environ[model_import.CACHE_ENV]
    else:
        os.environ[model_import.CACHE_ENV] = old


@pytest.fixture(scope="session")
def own(tmp_path_factory, cache_dir):
    """The trained evidence CNN and the odd models, the importable ones converted."""
    from attrkit.models import model_import
    from helpers import run_children
    out = run_children("own_model.py", tmp_path_factory.mktemp("own"), [[]])
    jobs = [("own.keras", None), ("binary.keras", None), ("gray_fcn.keras", [20, 24]),
            ("subclassed_savedmodel", None)]
    model_import.ensure_converted([(str(out / p), model_import.sniff_model(str(out / p)), s)
                                   for p, s in jobs])
    return out
