"""ONNX export and the onnxruntime backend: the graph layer on a small module, then real
released weights through `taskzoo.load(backend="onnx")` and `taskzoo export --format onnx`.
Every task's parity on real inputs is measured by benchmarks/onnx_parity.py."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import taskzoo
from taskzoo.errors import ConfigError, RunFileError, UsageError

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from taskzoo.deploy import graphs  # noqa: E402
from taskzoo.deploy.onnx import MANIFEST, load_onnx, session  # noqa: E402


class Decoder(nn.Module):
    """A decoder step shaped like captioning's: a state tuple in and out, a constant flag."""

    def __init__(self) -> None:
        super().__init__()
        self.cell = nn.GRUCell(4, 6)
        self.out = nn.Linear(6, 3)

    def step(self, x: torch.Tensor, state: tuple[torch.Tensor, ...], *,
             scale: float = 1.0) -> dict[str, torch.Tensor]:
        h = self.cell(x, state[0])
        return {"logits": self.out(h) * scale, "state": (h,), "best": self.out(h).argmax(-1)}


def test_flatten_puts_back_nested_tensors_and_constants():
    t = [torch.arange(3), torch.ones(2, 2)]
    obj = ((t[0], {"a": [t[1], None], "b": 2.5}), {"flag": True})
    leaves, skeleton = graphs.flatten(obj)
    assert len(leaves) == 2 and leaves[0] is t[0]
    back = graphs.unflatten(json.loads(json.dumps(skeleton)), leaves)  # the manifest's form
    assert back[0][1]["a"][0] is t[1] and back[0][1]["b"] == 2.5 and back[1] == {"flag": True}
    assert isinstance(back[0], tuple) and isinstance(back[0][1]["a"], list)
    with pytest.raises(UsageError, match="object passes through"):
        graphs.flatten((object(),))


def test_recording_records_calls_and_puts_the_methods_back():
    dec = Decoder().eval()
    with graphs.Recording(dec, ("step", "out.forward")) as records:
        dec.step(torch.zeros(2, 4), (torch.zeros(2, 6),))
    assert len(records["step"].calls) == 1
    assert len(records["out.forward"].calls) == 2  # reached from inside step, twice
    assert "step" not in dec.__dict__ and "forward" not in dec.out.__dict__
    with pytest.raises(UsageError, match="no method 'cell.nope'"):
        graphs.owner_of(dec, "cell.nope")


def test_a_method_exports_with_a_dynamic_batch_and_its_structure():
    torch.manual_seed(0)
    dec = Decoder().eval()
    with graphs.Recording(dec, ("step",)) as records:
        dec.step(torch.randn(3, 4), (torch.randn(3, 6),), scale=2.0)
    data, graph = graphs.export_method(dec, records["step"])
    assert graph["inputs"] == ["x", "state_0"]
    call = graphs.OrtCall(session(data, threads=1), graph)
    x, h = torch.randn(5, 4), torch.randn(5, 6)  # another batch size than the traced one
    got, want = call(x, (h,), scale=2.0), dec.step(x, (h,), scale=2.0)
    assert set(got) == {"logits", "state", "best"} and isinstance(got["state"], tuple)
    assert torch.allclose(got["logits"], want["logits"], atol=1e-5)
    assert torch.equal(got["best"], want["best"])
    with pytest.raises(UsageError, match="scale=2.0"):  # a constant the graph holds fixed
        call(x, (h,), scale=3.0)


def test_the_onnx_backend_answers_as_torch_does_and_exports_once(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKZOO_HOME", str(tmp_path / "home"))
    torch_clf = taskzoo.load("sentiment", device="cpu")
    onnx_clf = taskzoo.load("sentiment", backend="onnx")
    assert onnx_clf.backend == "onnx"
    texts = ["a gripping , beautiful film", "dull", "the plot is thin but the actors carry it ,"
             " and the last hour is wonderful", "not good at all"]
    for batch in (texts, texts[:1], texts[1]):  # other batch sizes and lengths than traced
        a, b = torch_clf(batch), onnx_clf(batch)
        a, b = (a, b) if isinstance(a, list) else ([a], [b])
        assert [x["label"] for x in a] == [x["label"] for x in b]
        assert all(abs(x["score"] - y["score"]) < 1e-3 for x, y in zip(a, b))
    # the answers are onnxruntime's: the torch module behind the graphs holds no trained weights
    assert not all(torch.equal(p, q) for p, q in zip(onnx_clf.model.parameters(),
                                                     torch_clf.model.parameters()))
    from taskzoo.deploy import onnx as onnx_mod

    monkeypatch.setattr(onnx_mod, "build_export",
                        lambda *a, **k: pytest.fail("exported again instead of the cache"))
    assert taskzoo.load("sentiment", backend="onnx")("dull")["label"] == b[0]["label"]


def test_cli_exports_a_released_agent_and_never_over_a_users_folder(tmp_path, capsys):
    from taskzoo.cli import main

    assert main(["export", "mlp_actor_critic.cartpole_v1", "--format", "onnx",
                 "--out", str(tmp_path)]) == 0
    folder = tmp_path / "mlp_actor_critic.cartpole_v1"
    manifest = json.loads((folder / MANIFEST).read_text())
    assert [g["method"] for g in manifest["graphs"]] == ["act"]
    assert manifest["graphs"][0]["parity"]["integer_outputs_unequal"] == 0
    assert "environment loop" in manifest["python"]
    assert "max |diff|" in capsys.readouterr().out
    agent, ref = load_onnx(folder), taskzoo.load("cartpole", device="cpu")
    obs = [[0.01, 0.2, -0.03, -0.3], [0.0, -0.5, 0.1, 0.9], [0.1, 0.0, 0.0, 0.0]]
    assert agent(obs) == ref(obs)
    # an export again replaces its own files; a folder of the user's is refused and kept
    assert main(["export", "mlp_actor_critic.cartpole_v1", "--format", "onnx",
                 "--out", str(tmp_path)]) == 0
    mine = tmp_path / "mine" / "mlp_actor_critic.cartpole_v1"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("keep me")
    assert main(["export", "mlp_actor_critic.cartpole_v1", "--format", "onnx",
                 "--out", str(tmp_path / "mine")]) == 2
    assert "not an ONNX export" in capsys.readouterr().err
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    # a graph changed after export is refused by its sha256
    graph = folder / manifest["graphs"][0]["file"]
    graph.write_bytes(graph.read_bytes() + b"\0")
    with pytest.raises(RunFileError, match="does not match the sha256"):
        load_onnx(folder)


def test_bad_backends_and_devices_are_named():
    with pytest.raises(ConfigError, match="Did you mean 'onnx'"):
        taskzoo.load("sentiment", backend="onx")
    with pytest.raises(ConfigError, match="onnxruntime runs here on the CPU"):
        taskzoo.load("sentiment", backend="onnx", device="cuda")


def test_an_extractive_summarizer_exports_for_any_sentence_count():
    from taskzoo.models import build

    torch.manual_seed(0)
    net = build("summarunner", input_dim=12, hidden_dim=8, features=4).eval()
    with graphs.Recording(net, ("forward",)) as records:
        net(torch.randn(2, 6, 12), torch.tensor([6, 4]))
    data, graph = graphs.export_method(net, records["forward"])
    call = graphs.OrtCall(session(data, threads=1), graph)
    for count in (3, 40, 60):  # fewer and more sentences than traced, past the 50 positions
        x, lengths = torch.randn(2, count, 12), torch.tensor([count, 2])
        assert torch.allclose(call(x, lengths), net(x, lengths), atol=1e-5)
