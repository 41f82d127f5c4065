"""tf.distribute strategies for training, and the cluster role of this process.

Keras 3.15's ``fit`` has two bugs under MultiWorkerMirroredStrategy (tensorflow#72388): it
reduces the whole first ``(x, y)`` batch in one ``strategy.reduce`` call when building, and it
reduces the scalar per-step logs with ``axis=0``; both raise. ``patch_keras_for_multiworker``
fixes the two call sites for the duration of a multi-worker run, so the same ``model.fit`` code
path serves every strategy.
"""

from __future__ import annotations

import contextlib
import json
import os

import keras


class SingleDevice:
    """Stands in for a strategy on backends other than TensorFlow: one replica, no scope."""

    num_replicas_in_sync = 1

    def scope(self):
        return contextlib.nullcontext()


def make_strategy(name: str):
    """The strategy for ``none``, ``mirrored`` or ``multiworker`` (cluster from TF_CONFIG).

    tf.distribute exists on the TensorFlow backend only; elsewhere (JAX) a run is one device.
    """
    if keras.backend.backend() != "tensorflow":
        if name != "none":
            raise SystemExit(f"--strategy {name} needs KERAS_BACKEND=tensorflow (tf.distribute)")
        return SingleDevice()
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise SystemExit("--strategy multiworker needs TF_CONFIG describing the cluster")
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def worker_role() -> tuple[int, bool]:
    """(task index, is chief) from TF_CONFIG; a lone process is worker 0 and chief."""
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    return index, kind == "chief" or (kind == "worker" and index == 0)


def patch_keras_for_multiworker(model: keras.Model, strategy) -> None:
    """Make ``model.fit`` work under MultiWorkerMirroredStrategy (see the module docstring)."""
    from keras.src.backend.tensorflow import trainer as tf_trainer

    def build_from_local_batch(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = keras.tree.map_structure(
                    lambda value: strategy.experimental_local_results(value)[0], next(batches))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = build_from_local_batch

    original_reduce = getattr(tf_trainer.reduce_per_replica, "__wrapped__", tf_trainer.reduce_per_replica)

    def reduce_per_replica(values, strategy_, reduction="auto"):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(strategy_):
            return keras.tree.map_structure(lambda value: strategy_.reduce("MEAN", value, axis=None), values)
        return original_reduce(values, strategy_, reduction)

    reduce_per_replica.__wrapped__ = original_reduce
    tf_trainer.reduce_per_replica = reduce_per_replica
