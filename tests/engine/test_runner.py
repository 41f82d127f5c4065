"""The engine runner's buffer, copy and shape logic against NumPy stand-ins for CUDA and
TensorRT (``fakes.py``) on GPU 1, so a call from a thread that did not bind it fails."""

import threading

import numpy as np
import pytest

from service.backends.tensorrt.buffers import TensorSpec, check_images, outputs_to_copy
from service.backends.tensorrt.errors import TensorRTError
from service.backends.tensorrt.runner import EngineRunner
from tests.engine.fakes import SPECS, C, FakeContext, FakeCuda, H, W


def make_runner(max_batch=4, **context_options):
    cuda = FakeCuda()
    context = FakeContext(cuda, **context_options)
    return EngineRunner(context, SPECS, max_batch, cuda), cuda, context


def images(batch, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (batch, H, W, 3), dtype=np.uint8)


def test_tensor_spec_sizes_follow_dtype_and_batch():
    assert SPECS[0].nbytes(4) == 4 * H * W * 3
    assert SPECS[1].nbytes(2) == 2 * H * W * C * 4
    assert SPECS[1].shape(2) == (2, H, W, C)
    with pytest.raises(ValueError, match="only the batch may vary"):
        TensorSpec("x", np.dtype(np.float32), (-1, 3), False)


def test_buffers_are_sized_once_for_the_largest_batch_and_bound_to_the_context():
    runner, cuda, context = make_runner(max_batch=4)
    assert [host.nbytes for host in cuda.hosts] == [spec.nbytes(4) for spec in SPECS]
    assert sorted(context.addresses) == sorted(spec.name for spec in SPECS)
    assert set(context.addresses.values()) == set(cuda.device)


@pytest.mark.parametrize("batch", [1, 3, 4])
def test_labels_only_request_copies_just_the_labels_back(batch):
    runner, cuda, context = make_runner()
    batch_images = images(batch)
    outputs = runner.run(batch_images, outputs_to_copy(runner.outputs, want_probabilities=False))
    assert list(outputs) == ["labels"]
    np.testing.assert_array_equal(outputs["labels"], batch_images[..., 0] % C)
    assert context.shapes == [("image", (batch, H, W, 3))]
    assert cuda.log == [("h2d", context.addresses["image"], batch * H * W * 3),
                        ("d2h", context.addresses["labels"], batch * H * W), ("sync",)]
    assert context.streams == [7]


def test_probabilities_come_back_when_asked_and_results_are_owned_by_the_caller():
    runner, cuda, _ = make_runner()
    first = runner.run(images(2, seed=1), outputs_to_copy(runner.outputs, want_probabilities=True))
    np.testing.assert_array_equal(first["probabilities"].argmax(-1), first["labels"])
    assert first["probabilities"].dtype == np.float32 and first["probabilities"].shape == (2, H, W, C)
    kept = first["labels"].copy()
    runner.run(images(2, seed=2), ["labels"])  # reuses the same pinned buffers
    np.testing.assert_array_equal(first["labels"], kept)


def test_each_batch_sets_its_own_input_shape():
    runner, _, context = make_runner()
    for batch in (3, 1, 4):
        runner.run(images(batch), ["labels"])
    assert [shape[0] for _, shape in context.shapes] == [3, 1, 4]


def test_bad_requests_are_refused_before_any_copy():
    runner, cuda, _ = make_runner(max_batch=2)
    with pytest.raises(ValueError, match="outside this engine's range 1..2"):
        runner.run(images(3), ["labels"])
    with pytest.raises(ValueError, match="must be a uint8 array"):
        runner.run(images(1).astype(np.float32), ["labels"])
    with pytest.raises(ValueError, match=r"shape \[N, 4, 6, 3\]"):
        runner.run(np.zeros((1, H, W + 1, 3), np.uint8), ["labels"])
    with pytest.raises(ValueError, match="no output"):
        runner.run(images(1), ["logits"])
    assert cuda.log == []


def test_shape_outside_the_profile_is_an_error():
    runner, _, _ = make_runner(accept_shapes=False)
    with pytest.raises(TensorRTError, match="optimisation profile"):
        runner.run(images(1), ["labels"])


def test_close_frees_everything_once_and_a_failed_init_frees_what_it_got():
    runner, cuda, _ = make_runner()
    runner.close()
    runner.close()
    assert len(cuda.freed_hosts) == 3 and sorted(cuda.freed_devices) == sorted(cuda.device)
    assert cuda.streams == []

    failing = FakeCuda(fail_on_alloc=1)
    with pytest.raises(TensorRTError, match="cudaMalloc failed"):
        EngineRunner(FakeContext(failing), SPECS, 4, failing)
    assert len(failing.freed_hosts) == 2 and len(failing.freed_devices) == 1


def test_close_still_frees_when_the_stream_sync_fails():
    cuda = FakeCuda(fail_sync=True)
    runner = EngineRunner(FakeContext(cuda), SPECS, 4, cuda)
    with pytest.raises(TensorRTError, match="cudaErrorIllegalAddress"):
        runner.close()
    assert cuda.streams == [] and len(cuda.freed_hosts) == 3 and len(cuda.freed_devices) == 3
    runner.close()  # nothing left to free, nothing raised


def test_every_thread_that_touches_the_runner_binds_its_gpu_first():
    """Built on one thread, run on the batcher's, closed on the event loop's: none starts on GPU 1."""
    runner, cuda, _ = make_runner()
    errors = []

    def run():
        try:
            np.testing.assert_array_equal(runner.run(images(2), ["labels"])["labels"], images(2)[..., 0] % C)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    def close():
        try:
            runner.close()
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    for work in (run, close):
        thread = threading.Thread(target=work)
        thread.start()
        thread.join()
    assert errors == [] and len(cuda.freed_devices) == 3


def test_check_images_and_output_selection():
    assert check_images(images(2), SPECS[0], 4) == 2
    outputs = {spec.name: spec for spec in SPECS[1:]}
    assert outputs_to_copy(outputs, False) == ["labels"]
    assert outputs_to_copy(outputs, True) == ["labels", "probabilities"]
    with pytest.raises(ValueError, match="no output"):
        outputs_to_copy({"labels": SPECS[2]}, True)
