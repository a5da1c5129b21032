"""Released weights: cards, lookup, one resolver of a weights spec, verified loading, export
and the cache check.

A released weight is two files: `bilstm.sst2.safetensors` and its card `bilstm.sst2.json`.
The card says what the weights are (task, architecture and its kwargs, the vocabulary and
labels the predictor needs, the recipe, the data and its hashes, the figures measured on
these very weights) and pins the file by sha256 and size. Default weights ship inside the
package (`taskzoo/released/`); others are fetched on demand through the hub (cache, then
TASKZOO_MIRROR's `<mirror>/weights/<file>`, then the canonical URL) and verified.

    >>> clf = taskzoo.load("sentiment")                         # doctest: +SKIP
    >>> clf(["a gripping , beautiful film"])[0]["label"]        # doctest: +SKIP
    'positive'

Weights are read with safetensors only: nothing is ever unpickled. The modules: `catalog`
(cards, the released list, a card's verified file), `tensors` (reading a file, filling a
model), `resolver` (a spec -> a card or run and its verified file), `loading` (`load`,
`init=`), `export` (a run -> a release asset), `thirdparty` (others' published weights).
"""

from __future__ import annotations

from taskzoo.weights.catalog import (
    DTYPES,
    GROUP,
    WeightCard,
    card_path,
    cards,
    hub_url,
    local_state,
    read_card,
    released_cards,
    resolve,
    unknown_name,
    weights_file,
)
from taskzoo.weights.loading import init_overrides, init_tensors, load
from taskzoo.weights.resolver import SpecRules, WeightsSource, resolve_spec
from taskzoo.weights.tensors import load_into, read_weights

__all__ = ["DTYPES", "GROUP", "SpecRules", "WeightCard", "WeightsSource", "card_path", "cards",
           "hub_url", "init_overrides", "init_tensors", "load", "load_into", "local_state",
           "read_card", "read_weights", "released_cards", "resolve", "resolve_spec",
           "unknown_name", "weights_file"]
