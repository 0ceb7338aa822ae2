"""ui.cached: the shared model cache leaves the loaded model out of the garbage collector's full scans."""

import gc
import weakref

import pytest

from ui.cached import get_model

pytestmark = pytest.mark.model  # get_model loads the real models


@pytest.mark.parametrize("name", ["smollm2", "minilm"])
def test_a_loaded_model_is_frozen_out_of_gc_yet_freed_when_dropped(name):
    get_model.clear()
    gc.unfreeze()
    lm = get_model(name)
    assert gc.get_freeze_count() > 10_000  # the model and everything imported before it
    param, model = weakref.ref(next(lm.model.parameters())), weakref.ref(lm.model)
    del lm
    get_model.clear()  # dropped from the cache: no reference left ...
    assert param() is None and model() is None  # ... so it is gone at once, without any collection
