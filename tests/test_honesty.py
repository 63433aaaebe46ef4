"""The honesty rules, each guarded by a test that fails when the rule is broken: the background threshold and the kept
checkpoint are chosen on the tune split, never on the split that is scored; every loss term has the sign and the
weight of the paper's formula (hand-computed values; the notebooks keep their own checks)."""
import math
from types import SimpleNamespace
import pytest
import torch
from torch import nn
from semples.config import check_config
from semples.core import save_torch, load_checkpoint
from semples.matching import MatchConfig, MatchLoss
from semples.prompts import PromptConfig, PromptLoss
from semples.refine import RefineConfig, RefineLoss
import semples.cam, semples.pipeline

# ------------------------------------------------------------------ loss terms: sign and weight
def unit(s:float, other:int=1)->torch.Tensor:
    "A unit vector whose cosine with e0 = [1, 0] is `s`."
    return torch.tensor([s, math.sqrt(1 - s * s)]) if other == 1 else torch.tensor([s, -math.sqrt(1 - s * s)])

E0 = torch.tensor([[1.0, 0.0], [1.0, 0.0]])   # the class sentences u_k of two classes, both e0: s = the first coordinate

def mask_loss(cls, cfg, s_fg:float, s_bg:float, bg_text=None)->float:
    "The loss of one positive pair whose foreground view has cosine s_fg, background view s_bg with its class sentence."
    ml = cls.__new__(cls); ml.cfg, ml.text = cfg, E0
    if bg_text is not None: ml.bg_text, ml.per_class = bg_text, True
    batch = dict(image=torch.zeros(1, 3, 4, 4), labels=torch.tensor([[1.0, 0.0]]))
    ml.views = lambda model, batch, pairs: (SimpleNamespace(logits=None), pairs, torch.full((1, 4, 4), 0.5), unit(s_fg)[None], unit(s_bg)[None])
    return ml(None, batch)[0].item()

def test_match_loss_is_lmax_fg_plus_lambda_bg_lmin_bg():
    "L_match = -log s_fg + lambda_bg * -log(1 - s_bg): at s_fg 0.5, s_bg 0.25, lambda_bg 2 that is 0.6931 + 2 * 0.2877 = 1.2685."
    cfg = lambda lam: MatchConfig(lambda_bg=lam, sim_map='cos', device='cpu')
    assert mask_loss(MatchLoss, cfg(2.0), 0.5, 0.25) == pytest.approx(1.268511, abs=1e-5)
    assert mask_loss(MatchLoss, cfg(0.0), 0.5, 0.25) == pytest.approx(0.693147, abs=1e-5)   # lambda_bg 0: the foreground term alone
    assert mask_loss(MatchLoss, cfg(2.0), 0.6, 0.25) < mask_loss(MatchLoss, cfg(2.0), 0.5, 0.25)   # a foreground view closer to its class: lower
    assert mask_loss(MatchLoss, cfg(2.0), 0.5, 0.35) > mask_loss(MatchLoss, cfg(2.0), 0.5, 0.25)   # a background view closer to the class: higher

def test_refine_loss_adds_lambda_ref_lmin_of_fg_and_background_prompt():
    "Stage (c): L_match + lambda_ref * -log(1 - s(fg, t_k)); with t_k = e1, s(fg, t_k) = sqrt(1 - 0.5^2) = 0.8660: -log(0.1340) = 2.0101 (hand: 2.010105)."
    bg_text = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    cfg = lambda lam: RefineConfig(lambda_bg=2.0, lambda_ref=lam, sim_map='cos', ref_sim_map='cos', device='cpu')
    assert mask_loss(RefineLoss, cfg(0.5), 0.5, 0.25, bg_text) == pytest.approx(1.268511 + 0.5 * 2.010105, abs=1e-5)
    assert mask_loss(RefineLoss, cfg(0.0), 0.5, 0.25, bg_text) == pytest.approx(1.268511, abs=1e-5)   # lambda_ref 0: stage (a)'s loss
    near = torch.tensor([[0.5, math.sqrt(0.75)]] * 2)                 # the prompt right on the foreground view: s = 1, clamped to 0.9999
    assert mask_loss(RefineLoss, cfg(0.5), 0.5, 0.25, near) > mask_loss(RefineLoss, cfg(0.5), 0.5, 0.25, bg_text)   # fg like the background prompt: higher

class FixedPrompts(nn.Module):
    "Prompt features t (C, D) as the encoder's output."
    def __init__(self, t): super().__init__(); self.ctx = nn.Parameter(t.clone())
    def forward(self): return self.ctx

def prompt_loss(lam:float, s_bg:float, s_u:float)->float:
    "L_prompt of one pair: background view with cosine s_bg to the prompt t = e0, class sentence with cosine s_u to it."
    pl = PromptLoss.__new__(PromptLoss); pl.cfg, pl.u = PromptConfig(lambda_p=lam, sim_map='cos', device='cpu'), unit(s_u)[None]
    return pl(FixedPrompts(torch.tensor([[1.0, 0.0]])), dict(bg=unit(s_bg)[None], cls=torch.tensor([0])))[0].item()

def test_prompt_loss_is_lmax_bg_plus_lambda_p_log_s_class():
    "L_prompt = -log s(bg, t) + lambda_p * log s(u, t): at 0.6, 0.3 and lambda_p 0.5: 0.5108 + 0.5 * -1.2040 = -0.0911."
    assert prompt_loss(0.5, 0.6, 0.3) == pytest.approx(0.510826 - 0.5 * 1.203973, abs=1e-5)
    assert prompt_loss(0.0, 0.6, 0.3) == pytest.approx(0.510826, abs=1e-5)
    assert prompt_loss(0.5, 0.6, 0.5) > prompt_loss(0.5, 0.6, 0.3)   # a prompt closer to the class sentence: higher (the push away)
    assert prompt_loss(0.5, 0.7, 0.3) < prompt_loss(0.5, 0.6, 0.3)   # a prompt closer to the background view: lower (the pull)

# ------------------------------------------------------------------ thresholds and checkpoints chosen on the tune split
TUNE_BEST, SCORED_BEST = 0.3, 0.7   # the threshold each split's CAMs make perfect (objects above it, background below)

def cfg_tiny()->dict:
    return check_config(dict(data=dict(world=dict(n_train=8, n_tune=8, n_test=8)), pseudo=dict(thresholds=[TUNE_BEST, SCORED_BEST])))

def split_cams(item:dict, split:str)->torch.Tensor:
    """CAMs from the ground truth: on the tune split objects 0.35, background 0.25; on any other split 0.75 and 0.65 (one pixel
    at 1 and one at 0, so the per-class min-max normalisation of the sweep keeps these values)."""
    hi, lo = (0.35, 0.25) if split == 'tune' else (0.75, 0.65)
    m = torch.as_tensor(item['mask']).long()
    c = torch.stack([torch.where(m == k + 1, hi, lo) for k in range(len(item['labels']))]).float()
    c[:, 0, 0], c[:, 0, 1] = 1.0, 0.0
    return c

def test_pseudo_threshold_is_chosen_on_the_tune_split(tmp_path):
    "The `pseudo` threshold sweep: tune split and labelled split each have their own best threshold; the tune split's is used."
    cfg = cfg_tiny(); labelled = semples.pipeline.open_dataset(cfg, 'train', 'full')
    thr = semples.pipeline._threshold(cfg, lambda ds: (lambda it: split_cams(it, ds.split)), tmp_path/'t.json', labelled, False)
    assert (thr['threshold'], thr['selected_on'], thr['tune_miou']) == (TUNE_BEST, 'tune', pytest.approx(1.0, abs=0.01)), thr

def test_score_chooses_the_threshold_on_tune_and_scores_test(monkeypatch):
    "`score` (score_net): the threshold comes from the tune split, then the test split is scored at it (not at its own best)."
    cfg = cfg_tiny(); tune, test = (semples.pipeline.open_dataset(cfg, s, 'full') for s in ('tune', 'test'))
    monkeypatch.setattr(semples.cam, 'predict_cams', lambda net, ds, **kw: {it['id']: split_cams(it, ds.split) for it in ds})
    r = semples.cam.score_net(None, tune, test, thresholds=[TUNE_BEST, SCORED_BEST])
    assert r['threshold'] == TUNE_BEST and r['miou'] < 0.9, r    # at the tune split's threshold everything on test is foreground
    with pytest.raises(ValueError, match='disjoint'): semples.cam.score_net(None, test, test)

def test_kept_checkpoint_is_the_tune_splits_best(tmp_path, monkeypatch):
    "select_every: the tune split prefers step 2, the scored split step 4 (the start, step 0, is worse on both); the checkpoint kept is step 2's."
    cfg = cfg_tiny(); cfg['match'].update(steps=4, select_every=2)
    seen = []
    def fake_score(cfg, net, tune):
        seen.append(tune.split); return {0: 0.3, 2: 0.9, 4: 0.5}[net.step] if tune.split == 'tune' else {0: 0.3, 2: 0.4, 4: 0.8}[net.step]
    monkeypatch.setattr(semples.pipeline, 'tune_miou', fake_score)
    def train(until=None):
        save_torch(dict(step=until), tmp_path/'checkpoint.pt'); return SimpleNamespace(step=until), []
    (tmp_path/'metrics.jsonl').write_text('')
    _, sel = semples.pipeline.train_picked(cfg, train, MatchConfig(**cfg['match']), tmp_path)
    assert set(seen) == {'tune'} and sel['chosen'] == 2 and load_checkpoint(tmp_path/'checkpoint.pt')['step'] == 2, (seen, sel)

def test_tune_miou_scores_the_tune_split(monkeypatch):
    "The score that picks checkpoints is the tune split's: at threshold 0.3 its CAMs separate objects, the other splits' do not."
    cfg = cfg_tiny(); cfg['pseudo']['thresholds'] = [TUNE_BEST]
    monkeypatch.setattr(semples.cam, 'predict_cams', lambda net, ds, **kw: {it['id']: split_cams(it, ds.split) for it in ds})
    assert semples.pipeline.tune_miou(cfg, nn.Linear(1, 1)) == pytest.approx(1.0, abs=0.01)   # at 0.3 the other splits are all foreground
