"""The CUDA paths of training, shown on the CPU wherever the mechanism runs there: batch norm under WGAN-GP across
processes, the process-group timeout, fp16's scalers and penalty recipe, fp32 validation under autocast, fused
Adam built on the run's device, and the GPU speed switches (same maths). CUDA-only checks are marked ``cuda``."""

from __future__ import annotations

import copy

import pytest
import torch
from test_train_support import make_aligned_pairs, reset_accelerate, run, tiny_config
from torch import nn

from pix2pix_hub.models import PatchDiscriminator, UNetGenerator
from pix2pix_hub.training import TrainingConfig, setup, speed
from pix2pix_hub.training.errors import ConfigError
from pix2pix_hub.training.losses import GANLoss, gradient_penalty
from pix2pix_hub.training.safe_state import load_optimizer, save_optimizer
from pix2pix_hub.training.step import StepParts, train_step
from pix2pix_hub.training.sync_norm import AllReduceBatchNorm2d, sync_batchnorm
from pix2pix_hub.training.validation import translate

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def tiny_networks(dropout: float = 0.5) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    return UNetGenerator(num_downs=5, ngf=8, dropout=dropout), PatchDiscriminator(
        in_channels=6, ndf=8
    ).disable_winograd()


def batches(count: int = 2, size: int = 32) -> list[dict[str, torch.Tensor]]:
    torch.manual_seed(123)
    return [
        {"input": torch.rand(2, 3, size, size) * 2 - 1, "target": torch.rand(2, 3, size, size) * 2 - 1}
        for _ in range(count)
    ]


def trained(accelerator, generator, discriminator, steps, prepare=None, sgd=False):
    """``generator`` after ``train_step`` on ``steps`` (plain Adam, or SGD where float noise must not be amplified
    by Adam's first steps; ``prepare(parts)`` may change the parts)."""
    make = (lambda p: torch.optim.SGD(p, lr=0.01)) if sgd else (lambda p: torch.optim.Adam(p, 2e-4, (0.5, 0.999)))
    optimizer_g, optimizer_d = make(generator.parameters()), make(discriminator.parameters())
    generator, discriminator, optimizer_g, optimizer_d = accelerator.prepare(
        generator, discriminator, optimizer_g, optimizer_d
    )
    parts = StepParts(generator, discriminator, optimizer_g, optimizer_d, GANLoss("vanilla"), 100.0, 10.0)
    if prepare is not None:
        prepare(parts)
    for seed, batch in enumerate(steps):
        torch.manual_seed(seed)
        train_step(batch, parts, accelerator)
    return accelerator.unwrap_model(parts.generator)


def assert_same_weights(a: nn.Module, b: nn.Module, atol: float = 1e-5) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(x.float(), y.float(), atol=atol), name


# ----- a. batch norm across processes under WGAN-GP ----------------------------------------------------------------
def test_wgangp_batch_norm_across_gpus_uses_the_all_reduce_norm_not_sync_batchnorm():
    cuda_device = torch.device("cuda")  # only the choice is made here: nothing runs on it
    twice = sync_batchnorm(PatchDiscriminator(in_channels=6, ndf=8), cuda_device, double_backward=True)
    kinds = {type(m) for m in twice.modules()}
    assert AllReduceBatchNorm2d in kinds and nn.SyncBatchNorm not in kinds
    once = sync_batchnorm(PatchDiscriminator(in_channels=6, ndf=8), cuda_device)
    assert nn.SyncBatchNorm in {type(m) for m in once.modules()}


def critic_net() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.LeakyReLU(0.2), nn.Conv2d(4, 1, 3))


def penalty_weight_grads(net: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """D's weight gradients of a summed WGAN-GP-style penalty: a double backward through batch norm."""
    x = x.clone().requires_grad_(True)
    (grads,) = torch.autograd.grad(net(x).sum(), x, create_graph=True)
    ((grads.flatten(1).norm(dim=1) - 1) ** 2).sum().backward()
    return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in net.parameters()]


def penalty_worker(rank: int, port: int, batch: torch.Tensor, results: dict) -> None:
    import os

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        net = sync_batchnorm(critic_net(), torch.device("cuda"), double_backward=True)  # as on GPUs under WGAN-GP
        grads = penalty_weight_grads(net, batch[:2] if rank == 0 else batch[2:])
        for grad in grads:
            dist.all_reduce(grad)  # as DDP sums them
        results[rank] = grads
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_the_penalty_through_all_reduce_batch_norm_in_two_processes_matches_one_process():
    import torch.multiprocessing as mp
    from test_train_sync_norm import free_port

    batch = torch.randn(4, 3, 6, 6)
    expected = penalty_weight_grads(critic_net(), batch)
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(penalty_worker, args=(free_port(), batch, results), nprocs=2, join=True)
        got = list(results[0])
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


# ----- b. the process-group timeout --------------------------------------------------------------------------------
def test_ddp_timeout_reaches_the_accelerator(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr(setup, "Accelerator", lambda **kwargs: seen.update(kwargs))
    setup.make_accelerator(TrainingConfig(output_dir=str(tmp_path), ddp_timeout=5400, report_to="none"))
    (handler,) = seen["kwargs_handlers"]
    assert handler.timeout.total_seconds() == 5400
    assert TrainingConfig().ddp_timeout >= 1800  # above NCCL's 10 minutes by default
    with pytest.raises(ConfigError, match="--ddp_timeout must be at least 1"):
        TrainingConfig(ddp_timeout=0).check()


# ----- c. fp16: the scalers and the penalty recipe ---------------------------------------------------------------
def test_generators_accumulated_micro_batches_keep_their_weights_under_a_growing_scaler():
    from accelerate import Accelerator

    def with_scaler(own: bool):
        reset_accelerate()
        accelerator = Accelerator(cpu=True, gradient_accumulation_steps=2)
        # A scaler that grows after every step: a shared one would change between G's two micro-batches.
        accelerator.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8, growth_interval=1)
        generator, discriminator = tiny_networks()
        prepare = (lambda parts: speed.give_generator_its_scaler(parts, accelerator)) if own else None
        return trained(accelerator, generator, discriminator, batches(2), prepare=prepare)

    reset_accelerate()
    reference = trained(Accelerator(cpu=True, gradient_accumulation_steps=2), *tiny_networks(), batches(2))
    assert_same_weights(with_scaler(own=True), reference)
    with pytest.raises(AssertionError):  # the defect: one scaler for both networks
        assert_same_weights(with_scaler(own=False), reference)
    reset_accelerate()


class FakeScaler:
    """Scales by a power of two, as GradScaler does, and records that it was asked."""

    def __init__(self, scale: float) -> None:
        self.scale_value, self.scaled = scale, 0

    def scale(self, value: torch.Tensor) -> torch.Tensor:
        self.scaled += 1
        return value * self.scale_value

    def get_scale(self) -> float:
        return self.scale_value


def test_gradient_penalty_follows_the_amp_recipe_scaled_then_unscaled_in_fp32():
    _, discriminator = tiny_networks()
    real, fake = torch.rand(2, 6, 32, 32), torch.rand(2, 6, 32, 32)
    plain = gradient_penalty(discriminator, real, fake, torch.Generator().manual_seed(1))
    scaler = FakeScaler(2.0**12)
    scaled = gradient_penalty(discriminator, real, fake, torch.Generator().manual_seed(1), scaler=scaler)
    assert scaler.scaled == 1 and torch.allclose(plain, scaled, rtol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert gradient_penalty(discriminator, real, fake).dtype == torch.float32


@pytest.mark.parametrize("saved_fused", [False, True])
def test_resuming_with_another_fused_adam_setting_keeps_this_runs_kernel(tmp_path, saved_fused):
    net = nn.Linear(4, 2)
    saved = torch.optim.Adam(net.parameters(), fused=saved_fused)
    net(torch.rand(3, 4)).sum().backward()
    saved.step()
    save_optimizer(saved, tmp_path / "optimizer.safetensors")
    resumed = torch.optim.Adam(net.parameters(), fused=not saved_fused)
    load_optimizer(resumed, tmp_path / "optimizer.safetensors")
    assert bool(resumed.param_groups[0]["fused"]) is (not saved_fused)
    scaler = torch.amp.GradScaler("cpu")
    scaler.scale(net(torch.rand(3, 4)).sum()).backward()
    scaler.step(resumed)  # a fused Adam holding a plain one's groups asserted here
    scaler.update()
    assert all(torch.isfinite(p).all() for p in net.parameters())


# ----- d. validation is fp32 under autocast ------------------------------------------------------------------------
def test_validation_and_the_trained_model_run_in_fp32_under_bf16_autocast():
    from accelerate import Accelerator

    reset_accelerate()
    generator, _ = tiny_networks()
    reference = copy.deepcopy(generator)
    accelerator = Accelerator(cpu=True, mixed_precision="bf16")
    prepared = accelerator.prepare(generator)
    inputs = torch.rand(2, 3, 32, 32) * 2 - 1
    expected = translate(reference, inputs)
    assert torch.equal(translate(accelerator.unwrap_model(prepared), inputs), expected)
    model = speed.fp32_eager(accelerator, prepared)
    with torch.no_grad():
        assert torch.equal(model.eval()(inputs), reference.eval()(inputs))
    reset_accelerate()


# ----- e. fused Adam built on the run's device ---------------------------------------------------------------------
def test_optimizers_are_built_after_the_networks_reach_the_device():
    generator, discriminator = tiny_networks()
    device = torch.device("meta")  # any device other than the CPU the networks were built on
    optimizer_g, optimizer_d = setup.make_optimizers(TrainingConfig(), generator, discriminator, device)
    for optimizer, network in ((optimizer_g, generator), (optimizer_d, discriminator)):
        held = [p for group in optimizer.param_groups for p in group["params"]]
        assert all(p.device.type == "meta" for p in held)
        assert [id(p) for p in held] == [id(p) for p in network.parameters()]


# ----- f. the GPU speed switches -----------------------------------------------------------------------------------
def test_switches_are_off_by_default_and_flags_on_the_command_line():
    from pix2pix_hub.training.arguments import config_from_args, training_parser

    config = TrainingConfig()
    assert not (config.channels_last or config.cudnn_benchmark or config.tf32 or config.compile)
    flags = ["--channels_last", "--cudnn_benchmark", "--tf32", "--compile", "--ddp_timeout", "900"]
    parsed = config_from_args(flags, training_parser())
    assert parsed.channels_last and parsed.cudnn_benchmark and parsed.tf32 and parsed.compile
    assert parsed.ddp_timeout == 900
    with pytest.raises(ConfigError, match="--compile with --gan_mode wgangp"):
        TrainingConfig(compile=True, gan_mode="wgangp").check()


def test_backend_switches_are_set_inside_and_restored_after():
    before = torch.backends.cudnn.benchmark
    with speed.backend_switches(TrainingConfig(cudnn_benchmark=True, tf32=True)):
        assert torch.backends.cudnn.benchmark is True
        assert all(getattr(owner, name) == value for owner, name, value in speed._tf32_settings())
    assert torch.backends.cudnn.benchmark is before
    with speed.backend_switches(TrainingConfig()):
        assert torch.backends.cudnn.benchmark is before


def test_channels_last_gives_the_same_training_steps():
    from accelerate import Accelerator

    reset_accelerate()
    # Without dropout: its masks are drawn in memory order (the same distribution, other draws).
    reference = trained(Accelerator(cpu=True), *tiny_networks(dropout=0.0), batches(2), sgd=True)
    generator, discriminator = tiny_networks(dropout=0.0)
    setup.make_optimizers(TrainingConfig(channels_last=True), generator, discriminator, torch.device("cpu"))
    conv_weight = next(p for p in generator.parameters() if p.ndim == 4)
    assert conv_weight.is_contiguous(memory_format=torch.channels_last)
    steps = [speed.channels_last(batch) for batch in batches(2)]
    assert steps[0]["input"].is_contiguous(memory_format=torch.channels_last)
    reset_accelerate()
    assert_same_weights(trained(Accelerator(cpu=True), generator, discriminator, steps, sgd=True), reference)
    reset_accelerate()


@pytest.mark.slow  # compiling takes most of a minute on 2 cores
def test_compile_gives_the_same_training_steps_and_reports_its_time():
    from accelerate import Accelerator

    reset_accelerate()
    # Without dropout: compiled code draws its masks with its own generator.
    reference = trained(Accelerator(cpu=True), *tiny_networks(dropout=0.0), batches(1), sgd=True)
    generator, discriminator = tiny_networks(dropout=0.0)
    speed.compile_networks(TrainingConfig(compile=True), generator, discriminator)
    assert generator._compiled_call_impl is not None
    reset_accelerate()
    accelerator = Accelerator(cpu=True)
    try:
        compiled = trained(accelerator, generator, discriminator, batches(1), sgd=True)
    except Exception as error:  # noqa: BLE001 - no working compiler here: the plumbing above is what runs
        pytest.skip(f"torch.compile cannot run here: {type(error).__name__}")
    assert_same_weights(compiled, reference)
    assert speed.fp32_eager(accelerator, compiled)._compiled_call_impl is None
    clock, said = speed.FirstStepClock(True), []
    clock.start()
    clock.stop(said.append)
    clock.start()
    clock.stop(said.append)
    assert len(said) == 1 and said[0].startswith("torch.compile: the first step")
    reset_accelerate()


def record_compile_modes(monkeypatch) -> list[tuple[str, str | None]]:
    """``nn.Module.compile`` replaced by a recorder of ``(class name, mode)``: nothing is compiled."""
    modes: list[tuple[str, str | None]] = []
    monkeypatch.setattr(nn.Module, "compile", lambda self, *a, **kw: modes.append((type(self).__name__, kw["mode"])))
    return modes


def test_compile_mode_flag_is_off_by_default_and_its_mistakes_get_one_line_errors():
    from pix2pix_hub.training.arguments import config_from_args, training_parser

    assert TrainingConfig().compile_mode == "default"
    parsed = config_from_args(["--compile", "--compile_mode", "reduce-overhead"], training_parser())
    assert parsed.compile and parsed.compile_mode == "reduce-overhead"
    parsed.check()
    for mode in ("reduce-overhead", "max-autotune"):
        with pytest.raises(ConfigError, match=f"^--compile_mode {mode} without --compile: add --compile") as error:
            TrainingConfig(compile_mode=mode).check()
        assert "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="--compile_mode 'fast' is not supported; choose one of default, "):
        TrainingConfig(compile=True, compile_mode="fast").check()
    with pytest.raises(SystemExit):
        config_from_args(["--compile", "--compile_mode", "fast"], training_parser())


def test_compile_mode_reaches_torch_compile_and_cuda_graphs_need_cuda(monkeypatch):
    generator, discriminator = tiny_networks()
    modes, said = record_compile_modes(monkeypatch), []
    cpu, gpu = torch.device("cpu"), torch.device("cuda")  # only the choice is made here: nothing runs on CUDA
    speed.compile_networks(TrainingConfig(compile_mode="max-autotune"), generator, discriminator, device=cpu)
    assert modes == []  # no --compile: nothing compiled
    graphs = TrainingConfig(compile=True, compile_mode="reduce-overhead")
    for config, device in ((TrainingConfig(compile=True, compile_mode="max-autotune"), cpu), (graphs, gpu)):
        speed.compile_networks(config, generator, discriminator, device=device, say=said.append)
        assert modes[-2:] == [("UNetGenerator", config.compile_mode), ("PatchDiscriminator", config.compile_mode)]
    assert said == []
    speed.compile_networks(graphs, generator, discriminator, device=cpu, say=said.append)
    assert [mode for _, mode in modes[-2:]] == ["default", "default"]
    assert len(said) == 1 and "CUDA graphs need a CUDA device" in said[0] and "compiles as default" in said[0]
    # The mark of a new CUDA-graph iteration before each step: only where CUDA graphs run.
    assert speed.graph_step_marker(graphs, gpu) is torch.compiler.cudagraph_mark_step_begin
    for config, device in ((graphs, cpu), (TrainingConfig(compile=True), gpu), (TrainingConfig(), gpu)):
        assert speed.graph_step_marker(config, device) is not torch.compiler.cudagraph_mark_step_begin


def test_a_cpu_run_with_cuda_graphs_asked_compiles_as_default_and_says_so(data, tmp_path, monkeypatch, capsys):
    modes, marks = record_compile_modes(monkeypatch), []
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(1))
    result = run(tiny_config(data, tmp_path, max_train_steps=2, compile=True, compile_mode="reduce-overhead"))
    assert result.global_step == 2
    assert [mode for _, mode in modes] == ["default", "default"] and len(modes) == 2  # G and D, once each
    assert "--compile_mode reduce-overhead: CUDA graphs need a CUDA device" in capsys.readouterr().out
    assert marks == []


# ----- on a GPU -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_aligned_pairs(tmp_path_factory.mktemp("pairs") / "train", count=10)


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("gan_mode", ["vanilla", "wgangp"])
def test_fp16_training_with_accumulation_then_resume_with_plain_adam_on_cuda(data, tmp_path, gan_mode):
    norm = "instance" if gan_mode == "wgangp" else "batch"
    common = {"mixed_precision": "fp16", "gradient_accumulation_steps": 2, "gan_mode": gan_mode, "norm": norm}
    first = run(tiny_config(data, tmp_path, max_train_steps=2, checkpointing_steps=1, **common))
    assert first.pix2pix.generator.forward.__func__ is type(first.pix2pix.generator).forward  # no autocast wrapper
    resumed = {"max_train_steps": 3, "no_fused_adam": True, "resume_from_checkpoint": "latest"}
    result = run(tiny_config(data, tmp_path, **resumed, **common))
    assert result.global_step == 3 and all(torch.isfinite(torch.tensor(v)) for v in result.metrics.values())


@pytest.mark.cuda
@cuda
def test_gpu_switches_train_on_cuda(data, tmp_path, capsys):
    switches = {"channels_last": True, "cudnn_benchmark": True, "tf32": True, "compile": True}
    result = run(tiny_config(data, tmp_path, max_train_steps=2, **switches))
    assert "torch.compile: the first step" in capsys.readouterr().out
    assert all(torch.isfinite(torch.tensor(v)) for v in result.metrics.values())


@pytest.mark.cuda
@cuda
def test_cuda_graphs_train_the_same_steps_as_eager_on_cuda(data, tmp_path, monkeypatch):
    """``--compile --compile_mode reduce-overhead``: three steps with the losses of the eager run (within float
    noise of other kernels), the step marked before each, and no graph skipped by CUDA graphs."""
    from torch._dynamo.utils import counters

    from pix2pix_hub.training import trainer

    losses, marks, original_step = [], [], trainer.train_step
    mark = torch.compiler.cudagraph_mark_step_begin
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(1) or mark())

    def recording_step(*args):
        step_losses = original_step(*args)
        losses[-1].append({name: float(value) for name, value in step_losses.items()})
        return step_losses

    monkeypatch.setattr(trainer, "train_step", recording_step)
    common = {"max_train_steps": 3, "no_dropout": True}  # compiled code draws dropout masks with its own generator
    for settings in ({}, {"compile": True, "compile_mode": "reduce-overhead"}):
        torch._dynamo.reset()
        counters.clear()
        losses.append([])
        run(tiny_config(data, tmp_path / str(len(losses)), **common, **settings))
    eager, graphed = losses
    assert len(eager) == len(graphed) == 3 and len(marks) == 3
    for step, (a, b) in enumerate(zip(eager, graphed)):
        tolerance = 1e-3 if step == 0 else 2e-2  # Adam's first steps amplify float noise
        assert a.keys() == b.keys()
        assert all(b[name] == pytest.approx(a[name], rel=tolerance, abs=tolerance) for name in a), (step, a, b)
    assert counters["inductor"]["cudagraph_skips"] == 0, dict(counters["inductor"])


def test_checkpoint_exports_see_the_fp32_eager_forward_and_training_gets_its_wrapper_back():
    from accelerate import Accelerator

    reset_accelerate()
    generator, _ = tiny_networks()
    reference = copy.deepcopy(generator).eval()
    prepared = Accelerator(cpu=True, mixed_precision="bf16").prepare(generator).eval()
    wrapped = prepared.forward
    inputs = torch.rand(1, 3, 32, 32)
    with torch.no_grad(), speed.eager_fp32(prepared, None):
        assert torch.equal(prepared(inputs), reference(inputs))
    assert prepared.forward == wrapped
    reset_accelerate()


# ----- g. the bf16 advice, from a timing -----------------------------------------------------------------------------
def test_bf16_timing_is_real_and_bounded():
    from pix2pix_hub.performance import time_bf16_autocast

    before = torch.get_rng_state()
    timing = time_bf16_autocast(budget_s=0.3)
    assert timing["fp32_ms"] > 0 and timing["bf16_ms"] > 0
    assert timing["speedup"] == pytest.approx(timing["fp32_ms"] / timing["bf16_ms"])
    assert torch.equal(torch.get_rng_state(), before)


def test_bf16_advice_follows_the_measurement_cached_per_cpu(tmp_path, monkeypatch):
    from pix2pix_hub.training import advice

    calls = []

    def fake(speedup):
        return lambda: calls.append(speedup) or {"fp32_ms": 10.0, "bf16_ms": 10.0 / speedup, "speedup": speedup}

    cache = tmp_path / "bf16.json"
    assert advice.measured_bf16_speedup(cache, fake(2.0)) == 2.0
    assert advice.measured_bf16_speedup(cache, fake(0.2)) == 2.0 and calls == [2.0]  # read back, not re-timed
    monkeypatch.setattr(advice, "cpu_name", lambda: "another CPU")
    assert advice.measured_bf16_speedup(cache, fake(0.2)) == 0.2 and calls == [2.0, 0.2]
    monkeypatch.setattr(advice, "cpu_capabilities", lambda: {"avx2": True, "avx512f": False})  # same name, other flags
    assert advice.measured_bf16_speedup(cache, fake(0.5)) == 0.5 and calls == [2.0, 0.2, 0.5]
    no_flags = {"avx512_bf16": False, "amx_bf16": False}
    assert "--mixed_precision bf16 would likely train faster (measured here" in advice.cpu_precision_note(
        "no", no_flags, speedup=2.0
    )
    native = {"avx512_bf16": True, "amx_bf16": False}
    assert advice.cpu_precision_note("bf16", native, speedup=0.3).startswith("Warning")
    assert "a guess from the CPU flags; `make bench` measures" in advice.cpu_precision_note("no", native)
