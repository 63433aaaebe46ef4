"semples.explore: the widget explorers, driven without a browser (set a widget value, read .result)."
import numpy as np
import pytest
import torch

from semples.data import ToyWorldDataset
from semples.pseudo import synthetic_cams, cams_to_mask, evaluate_cams
from semples.metrics import image_miou
from semples.explore import (mask_panels, mask_browser, ThresholdStudy, threshold_explorer,
                             prompt_similarities, prompt_inspector)


@pytest.fixture(scope='module')
def toy():
    ds = ToyWorldDataset(n=8, start=300, split='toy-explore', size=32, seed=11)
    # CAMs at a lower resolution than the masks, so the study must resize them
    cams = {i: synthetic_cams(ds.read_mask(i), 6, stride=4, gamma=2.0, noise=0.1, seed=k)[:, ::2, ::2].clone()
            for k, i in enumerate(ds.ids)}
    return ds, cams


@pytest.fixture(scope='module')
def clip():
    from semples.clip import load_clip
    return load_clip('toyclip')


def test_mask_browser_panels_follow_slider(toy):
    ds, _ = toy
    imgs = [ds.read_image(i) for i in ds.ids]
    gts = [ds.read_mask(i) for i in ds.ids]
    heat = [np.linspace(0, 1, 32 * 32, dtype=np.float32).reshape(32, 32)] * len(imgs)
    w = mask_browser(imgs, {'gt': gts, 'heat': heat, 'empty': [None] * len(imgs),
                            'torch': [torch.as_tensor(g) for g in gts]}, titles=ds.ids)
    for i in (len(imgs) - 1, 2):
        w.children[0].value = i
        r = w.result
        assert [p['kind'] for p in r] == ['mask', 'heat', 'image', 'mask']
        want = sorted(set(np.unique(gts[i]).tolist()) - {0, 255})
        assert r[0]['classes'] == want and r[3]['classes'] == want
        assert r[0]['fg_fraction'] == pytest.approx(float((gts[i] > 0).mean()))
    assert w.children[0].max == len(imgs) - 1


def test_mask_panels_ignore_index_is_not_a_class():
    m = np.zeros((4, 4), np.uint8); m[0] = 255; m[1, :2] = 3
    p = mask_panels([np.zeros((4, 4, 3), np.uint8)], {'m': [m]}, 0)[0]
    assert p['classes'] == [3] and p['fg_fraction'] == pytest.approx(2 / 16)


def test_mask_browser_rejects_bad_input(toy):
    ds, _ = toy
    imgs = [ds.read_image(i) for i in ds.ids]
    with pytest.raises(ValueError, match='one mask'): mask_browser(imgs, {'gt': [None]})
    with pytest.raises(ValueError, match='non-empty dict'): mask_browser(imgs, [None] * len(imgs))
    with pytest.raises(ValueError, match='empty'): mask_browser([], {'gt': []})


def test_threshold_study_matches_evaluate_cams_and_hand_iou(toy):
    ds, cams = toy
    st = ThresholdStudy(cams, ds)
    for t in (0.1, 0.45, 0.8):
        assert st.miou_at(t) == pytest.approx(evaluate_cams(cams, ds, threshold=t)['miou'], abs=1e-6)
        k = ds.ids[1]
        assert torch.equal(st.mask_at(k, t), cams_to_mask(cams[k], ds.labels_of(k), t, size=(32, 32)))
    # above every normalised CAM only background is left, so only background can have a non-zero IoU
    assert all(int((st.mask_at(k, 1.01) > 0).sum()) == 0 for k in ds.ids)
    pc = st.scores_at(1.01)['per_class']
    assert pc['background'] > 0 and all(v in (None, 0.0) for c, v in pc.items() if c != 'background')
    assert st.miou_at(0.45) > st.miou_at(1.01)


def test_threshold_study_from_items_without_read_mask(toy):
    ds, cams = toy
    items = {k: ds[k] for k in ds.ids}          # a plain dict of dataset items
    a, b = ThresholdStudy(cams, ds), ThresholdStudy(cams, items)
    assert a.miou_at(0.3) == pytest.approx(b.miou_at(0.3), abs=1e-9)
    with pytest.raises(ValueError, match='ground truth'):
        ThresholdStudy(cams, {k: {'labels': it['labels'], 'image': it['image']} for k, it in items.items()})
    with pytest.raises(ValueError, match=r'\(C, h, w\)'): ThresholdStudy({ds.ids[0]: torch.zeros(6, 4)}, ds)


def test_threshold_explorer_widget(toy):
    ds, cams = toy
    w = threshold_explorer(cams, ds, thresholds=(0.6, 0.2, 0.4), threshold=0.43, plot=False)
    assert list(w.children[0].options) == [0.2, 0.4, 0.6]
    assert w.result['threshold'] == 0.4                                   # snapped to the nearest value
    w.children[0].value = 0.6
    assert w.result['miou'] == pytest.approx(w.study.miou_at(0.6))
    k = ds.ids[3]; w.children[1].value = k
    pred = cams_to_mask(cams[k], ds.labels_of(k), 0.6, size=(32, 32))
    assert w.result['image'] == k
    assert w.result['image_miou'] == pytest.approx(float(image_miou(pred, torch.as_tensor(ds.read_mask(k)).long(), 7)))
    assert [t for t, _ in w.curve] == [0.2, 0.4, 0.6]


def test_prompt_inspector_from_words(clip):
    from semples.prompts import PromptEncoder
    words = ['water', 'sky', 'grass']
    pe = PromptEncoder(clip, 3, n_ctx=1, init=words)
    w = prompt_inspector(clip, pe, ['a', 'b', 'c'], words=words + ['boat', 'cow'], k=2, plot=False)
    for name, word in zip('abc', words):
        w.children[0].value = name
        assert w.result['nearest'][0][0] == word
        assert w.result['nearest'][0][1] == pytest.approx(1.0, abs=1e-4)
        assert max(w.result['sims'], key=w.result['sims'].get) == word
        assert len(w.result['nearest']) == 2


def test_prompt_similarities_are_cosines(clip):
    feats = torch.randn(4, clip.encode_texts(['x']).shape[1]) * 7
    words, s = prompt_similarities(clip, feats, ['water', 'boat'], template='a photo of {}.')
    assert s.shape == (4, 2) and float(s.abs().max()) <= 1 + 1e-5
    t = clip.class_text_features(words, ('a photo of {}.',))
    assert torch.allclose(s, torch.nn.functional.normalize(feats, dim=-1) @ t.T, atol=1e-5)
    # default: ToyWorld's sentences, 'a photo of a boat.' but 'a photo of water.' (as semples.prompts.toy_vocabulary_features)
    _, s2 = prompt_similarities(clip, feats, ['water', 'boat'])
    t2 = torch.cat([clip.class_text_features(['water'], ('a photo of {}.',)), clip.class_text_features(['boat'], ('a photo of a {}.',))])
    assert torch.allclose(s2, torch.nn.functional.normalize(feats, dim=-1) @ t2.T, atol=1e-5)
    with pytest.raises(ValueError, match='templates'): prompt_similarities(clip, feats, ['water', 'boat'], template=['a {}.'])
    with pytest.raises(ValueError, match='dim'): prompt_similarities(clip, torch.randn(2, 5))
    with pytest.raises(ValueError, match='empty'): prompt_similarities(clip, feats, [])
    with pytest.raises(ValueError, match='one name per prompt'): prompt_inspector(clip, feats, ['a'], plot=False)


# --- the SemPLeS stages: a tiny pipeline run, loaded back ---------------------------------------------------------

@pytest.fixture(scope='module')
def pipeline_run(tmp_path_factory):
    from semples.config import check_config
    from semples.demo import demo_config, run_demo
    out = tmp_path_factory.mktemp('pipeline')
    cfg = demo_config(quick=True); cfg['data']['world'].update(n_tune=8, n_test=8)
    m = run_demo(out, check_config(cfg), rows=('cam', 'matching', 'semples'), progress=False, clip_eval_n=0, figure_images=0)
    return out, m


def test_load_pipeline_run_loads_every_stage(pipeline_run):
    from semples.cam import predict_cams
    from semples.explore import load_pipeline_run
    from semples.prompts import prompt_features
    out, m = pipeline_run
    run = load_pipeline_run(out)
    assert list(run.nets) == ['cam', 'matching', 'semples']
    assert run.thresholds == {k: m['threshold'][k] for k in run.nets}
    assert run.config['data']['world']['n_test'] == 8 and run.prompts is not None
    test = run.split('test')
    assert len(test) == 8 and run.split('test', 3).ids == test.ids[:3]
    # the loaded networks are the trained ones: each equals its stage's checkpoint, and the stages differ
    sd = {k: run.nets[k].state_dict() for k in run.nets}
    for k, folder in (('cam', 'cam'), ('matching', 'match'), ('semples', 'refine')):
        ck = torch.load(out/folder/'checkpoint.pt', map_location='cpu', weights_only=True)['model']
        assert all(torch.equal(sd[k][n], ck[n]) for n in ck), k
    assert any(not torch.equal(sd['cam'][n], sd['semples'][n]) for n in sd['cam'])
    c = predict_cams(run.nets['semples'], run.split('test', 2), progress=False)
    assert next(iter(c.values())).shape[0] == len(test.classes)
    ck = torch.load(out/'prompts'/'checkpoint.pt', map_location='cpu', weights_only=True)
    assert torch.equal(run.prompts.ctx.detach(), ck['model']['ctx'])
    assert prompt_features(run.prompts).shape[0] == len(test.classes)
    nc = load_pipeline_run(out, clip=False)
    assert nc.clip is None and nc.prompts is None and list(nc.nets) == list(run.nets)


def test_load_pipeline_run_errors_and_stored_stage0(pipeline_run, tmp_path):
    import shutil
    from semples.cam import load_toy_cam
    from semples.config import check_config
    from semples.demo import demo_config, run_demo
    from semples.explore import load_pipeline_run
    out, _ = pipeline_run
    with pytest.raises(FileNotFoundError, match='semples score'): load_pipeline_run(tmp_path/'nothing')
    d = tmp_path/'copy'; shutil.copytree(out, d)
    shutil.rmtree(d/'match')                        # a pruned folder: scored, but its network is gone
    with pytest.raises(FileNotFoundError, match="row 'matching'"): load_pipeline_run(d, clip=False)
    # stage 0 taken from the stored network (cam.network_file 'stored'): OUT/cam holds exactly that network
    cfg = demo_config(quick=True); cfg['cam']['network_file'] = 'stored'
    run_demo(tmp_path/'stored', check_config(cfg), rows=('cam',), progress=False, clip_eval_n=0, figure_images=0)
    run = load_pipeline_run(tmp_path/'stored', clip=False)
    ref = load_toy_cam()
    assert all(torch.equal(a, b) for a, b in zip(run.nets['cam'].state_dict().values(), ref.state_dict().values()))


def test_stage_browser_shows_each_stage_at_its_threshold(pipeline_run):
    from semples.explore import load_pipeline_run, stage_browser, stage_cams, stage_masks
    out, _ = pipeline_run
    run = load_pipeline_run(out, clip=False)
    ds = run.split('test', 5)
    w = stage_browser(run, ds)
    assert set(w.cams) == set(run.nets) and len(w.result) == 1 + len(run.nets)
    assert w.result[0]['title'] == 'ground truth' and 'stage c' in w.result[-1]['title']
    for i in (4, 1):
        w.children[0].value = i
        k = ds.ids[i]
        assert w.result[0]['classes'] == sorted(set(np.unique(ds.read_mask(k)).tolist()) - {0, 255})
        for p, stage in zip(w.result[1:], run.nets):
            want = cams_to_mask(w.cams[stage][k], ds.labels_of(k), run.thresholds[stage])
            assert p['classes'] == sorted(set(want.unique().tolist()) - {0})
            assert p['fg_fraction'] == pytest.approx(float((want > 0).float().mean()))
    # another threshold for one stage changes that stage's masks only
    m2 = stage_masks(run, ds, w.cams, thresholds={'cam': 0.05})
    lo = [t for t in m2 if t.startswith('CAM')][0]; before = [t for t in w.masks if t.startswith('CAM')][0]
    assert lo.endswith('t=0.05')
    want = [cams_to_mask(w.cams['cam'][k], ds.labels_of(k), 0.05) for k in ds.ids]
    assert all(torch.equal(torch.as_tensor(x), y) for x, y in zip(m2[lo], want))                  # the CAM panel at t=0.05
    assert not all(torch.equal(torch.as_tensor(x), torch.as_tensor(y)) for x, y in zip(m2[lo], w.masks[before]))   # and it moved
    for t in m2:
        if t not in (lo, 'ground truth'):                                                            # every other panel as before
            assert all(torch.equal(torch.as_tensor(x), torch.as_tensor(y)) for x, y in zip(m2[t], w.masks[t])), t
    with pytest.raises(ValueError, match='has no stage'): stage_cams(run, ds, ['manual_prompts'])


def test_stage_threshold_explorer_recomputes_per_stage(toy):
    from semples.explore import stage_threshold_explorer
    ds, cams = toy
    sharp = {k: c ** 3 for k, c in cams.items()}                 # a second "stage": sharper CAMs, other best threshold
    w = stage_threshold_explorer({'cam': cams, 'semples': sharp}, ds, thresholds=(0.2, 0.4, 0.6), marks={'cam': 0.41, 'semples': 0.2}, plot=False)
    assert w.result['stage'] == 'semples' and w.result['threshold'] == 0.2      # starts at the stage's mark
    w.children[1].value = 0.6
    assert w.result['miou'] == pytest.approx(ThresholdStudy(sharp, ds).miou_at(0.6))
    w.children[0].value = 'cam'
    assert w.result['miou'] == pytest.approx(ThresholdStudy(cams, ds).miou_at(0.6))
    assert w.result['miou'] != pytest.approx(w.curves['semples'][2][1])
    assert w.result['best'] == max(w.curves['cam'], key=lambda p: p[1])
    k = ds.ids[2]; w.children[2].value = k
    pred = cams_to_mask(cams[k], ds.labels_of(k), 0.6, size=(32, 32))
    assert w.result['image_miou'] == pytest.approx(float(image_miou(pred, torch.as_tensor(ds.read_mask(k)).long(), 7)))
    with pytest.raises(ValueError, match='stage:'): stage_threshold_explorer(cams, ds)
    with pytest.raises(ValueError, match='not among'): stage_threshold_explorer({'cam': cams}, ds, stage='x')


def test_prompt_inspector_on_learned_prompts_matches_the_run(pipeline_run):
    from semples.explore import load_pipeline_run
    from semples.toyworld import TOY_CLASSES
    out, m = pipeline_run
    run = load_pipeline_run(out)
    w = prompt_inspector(run.clip, run.prompts, TOY_CLASSES, plot=False)
    assert {c: [x for x, _ in n] for c, n in zip(TOY_CLASSES, w.nearest)} == m['prompt_words']
    w.children[0].value = 'cow'
    assert [x for x, _ in w.result['nearest']] == m['prompt_words']['cow']
    assert w.result['nearest'][0][1] == pytest.approx(max(w.result['sims'].values()), abs=1e-4)
