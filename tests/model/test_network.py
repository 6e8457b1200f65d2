"""The fusion network's wiring, on random inputs (fast: no encoders, no training)."""

from __future__ import annotations

import pytest
import torch

from dermeval.model.network import DermEvalEnsemble, DermEvalNet, NetConfig, build_network
from tests.conftest import train_config


def _inputs(b: int = 3, length: int = 7, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, length, dtype=torch.bool)
    mask[0, 5:] = False
    return {"image": torch.randn(b, 1280, generator=g), "units": torch.randn(b, length, 384, generator=g),
            "mask": mask, "stats": torch.rand(b, 4, generator=g), "conclusion": torch.tensor([2, 6, -1])}


def _net(**kw) -> DermEvalNet:
    torch.manual_seed(0)
    return DermEvalNet(NetConfig.from_train(train_config(**kw), n_defects=5, n_categories=4)).eval()


def test_a_config_saved_before_the_context_category_loads_as_it_was():
    old = {"hidden": 128, "dropout": 0.1, "n_defects": 5, "n_categories": 4, "image_dim": 1280, "text_dim": 384,
           "n_stats": 4, "length_inputs": False}
    net = DermEvalNet(NetConfig.from_saved(old)).eval()
    assert not hasattr(net, "context_category")
    with torch.no_grad():
        out = net(**_inputs())
    assert torch.equal(out["seen_category"], out["image_category"])
    assert out["mean"].shape == (3, 6) and bool(((out["mean"] >= 0) & (out["mean"] <= 5)).all())


def test_the_findings_witness_reads_every_sentence_but_the_conclusion():
    net = _net(context_category=True, defects_read_match=True)
    x = _inputs()
    with torch.no_grad():
        base = net(**x)
        concl = {**x, "units": x["units"].clone()}
        concl["units"][0, 2] += 5.0  # row 0's conclusion unit
        other = {**x, "units": x["units"].clone()}
        other["units"][0, 3] += 5.0  # one of row 0's findings
        padded = {**x, "units": x["units"].clone()}
        padded["units"][0, 6] += 5.0  # beyond row 0's mask
        a, b, c = net(**concl), net(**other), net(**padded)
    seen = base["seen_category"][0]
    # The conclusion is what gets checked, so it must not vouch for itself.
    assert torch.allclose(a["seen_category"][0], seen) and not torch.allclose(a["text_category"][0],
                                                                                base["text_category"][0])
    assert not torch.allclose(b["seen_category"][0], seen)
    assert torch.allclose(c["seen_category"][0], seen)
    assert not torch.equal(base["seen_category"], base["image_category"])


def test_the_defect_head_reads_the_verdict_only_when_configured():
    with_match = _net(context_category=True, defects_read_match=True, image_verdict=False)
    without = _net(context_category=True, defects_read_match=False, image_verdict=False)
    assert with_match.defects[0].in_features == without.defects[0].in_features + 2
    both = _net(context_category=True, defects_read_match=True, image_verdict=True)
    assert both.defects[0].in_features == without.defects[0].in_features + 4


def test_the_image_verdict_reads_the_image_and_the_conclusion_but_not_the_findings():
    """A narrative whose findings agree with its conclusion is still checked against the image alone."""
    net = _net(context_category=True, image_verdict=True)
    x = _inputs()
    findings = {**x, "units": x["units"].clone()}
    findings["units"][1, :5] += 3.0  # every sentence before the conclusion (unit 6) changes
    other_image = {**x, "image": x["image"] + 3.0 * torch.randn(x["image"].shape, generator=torch.Generator()
                                                                .manual_seed(9))}
    with torch.inference_mode():
        base, f, i = net(**x), net(**findings), net(**other_image)
    assert torch.allclose(base["match_image"][1], f["match_image"][1])  # findings: no effect on it
    assert not torch.allclose(base["match"][1], f["match"][1])  # ... but on the combined verdict
    assert not torch.allclose(base["match_image"], i["match_image"])
    assert base["match_image"][2] == 0  # no conclusion, no verdict
    legacy = NetConfig.from_saved({k: v for k, v in net.cfg.to_dict().items() if k != "image_verdict"})
    assert legacy.image_verdict is False  # a model saved before it loads without it


def test_an_ensemble_reads_its_members_as_one_network_and_their_disagreement_as_uncertainty():
    cfg = NetConfig.from_train(train_config(members=3), n_defects=5, n_categories=4)
    torch.manual_seed(0)
    ens = build_network(cfg).eval()
    assert isinstance(ens, DermEvalEnsemble) and len(ens.members) == 3
    x = _inputs()
    with torch.no_grad():
        outs = [m(**x) for m in ens.members]
        out = ens(**x)
    means = torch.stack([o["mean"] for o in outs])
    assert torch.allclose(out["mean"], means.mean(0))
    # the mixture's variance: the members' own variance plus their spread
    own = torch.stack([o["logvar"].exp() for o in outs]).mean(0)
    assert torch.allclose(out["logvar"].exp(), own + means.var(0, unbiased=False), rtol=1e-5)
    assert bool((out["logvar"].exp() > own).all())  # members that disagree are less sure together
    probs = torch.stack([torch.sigmoid(o["defect_logits"]) for o in outs]).mean(0)
    assert torch.allclose(torch.sigmoid(out["defect_logits"]), probs, atol=1e-5)
    assert out["attention"].shape == outs[0]["attention"].shape
    # identical members: the ensemble says what one of them says, with the same uncertainty
    for m in ens.members[1:]:
        m.load_state_dict(ens.members[0].state_dict())
    with torch.no_grad():
        one, same = ens.members[0](**x), ens(**x)
    for key in ("mean", "logvar", "defect_logits", "match", "match_image"):
        assert torch.allclose(one[key], same[key], atol=1e-5), key
    assert torch.equal(one["seen_category"].argmax(-1), same["seen_category"].argmax(-1))


def test_a_config_saved_before_ensembles_builds_one_network():
    saved = NetConfig.from_train(train_config(), n_defects=5, n_categories=4).to_dict()
    saved.pop("members")
    assert isinstance(build_network(NetConfig.from_saved(saved)), DermEvalNet)


def test_an_ensemble_wraps_trained_networks_as_they_are_and_refuses_a_wrong_count():
    cfg = NetConfig.from_train(train_config(members=2), n_defects=5, n_categories=4)
    torch.manual_seed(1)
    nets = [DermEvalNet(cfg), DermEvalNet(cfg)]
    ens = DermEvalEnsemble(cfg, nets)
    assert all(a is b for a, b in zip(ens.members, nets, strict=True))  # no copies: the trained weights themselves
    with pytest.raises(ValueError, match="2 members was given 1"):
        DermEvalEnsemble(cfg, nets[:1])
