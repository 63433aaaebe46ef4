"""The judge card's gates on the stored judges, and the stored cards' claims recomputed (research/06_judge)."""
import json, math
import pytest
from semples.core import project_root, load_json
from semples.research.judge import JUDGE_CARDS_FILE, WEB_JUDGE_DIR, WEB_RECIPE, card_gates, judge_card, break_even

CARDS = load_json(project_root()/JUDGE_CARDS_FILE)

@pytest.mark.parametrize('name', sorted(CARDS))
def test_stored_verdicts_follow_from_stored_figures(name):
    "Every gate's value and verdict in the file is what `card_gates` makes of the stored figures; break-evens follow from their deltas."
    c = CARDS[name]
    assert card_gates(c['card']) == c['gates']
    for k in ('ref_band_sentence', 'ref_learned'):
        r = c['card'][k]
        assert r['d'] == pytest.approx(r['band'] - r['exact'], abs=1e-9)
        assert r['break_even'] == pytest.approx(break_even(c['card']['match']['d'], r['d']), rel=1e-9)
    m = c['card']['match']
    assert m['d'] == pytest.approx(m['band']['total'] - m['exact']['total'], abs=1e-9)
    assert c['card']['lambda_bg'] == pytest.approx((1 - c['card']['medians']['s_bg']) / c['card']['medians']['s_fg'], rel=1e-9)

def test_negative_control_reproduces_the_band_detector():
    "The faint world's first judge: the band alone is named better than the object alone, and the conflict test names the band."
    c = CARDS['negative']['card']
    assert c['band']['acc'] > c['object']['acc'] and c['conflict']['band_owner'] > c['conflict']['object']
    assert c['match_paper']['d'] < -2 and not CARDS['negative']['gates']['passes']

@pytest.mark.skipif(not (project_root()/WEB_JUDGE_DIR/'open_clip_config.json').is_file(), reason='no stored web-mixture judge')
def test_stored_web_judge_card_measured_again():
    "The card measured again on the stored web-mixture judge (one thread here): the same figures and the same verdict on every gate as stored."
    import torch
    from semples.toyclip import load_toyclip
    torch.manual_seed(0)
    model, tok = load_toyclip('cpu', project_root()/WEB_JUDGE_DIR)
    card, stored = judge_card(model, tok), CARDS['web']
    g = card_gates(card)
    assert {k: v['holds'] for k, v in g['gates'].items()} == {k: v['holds'] for k, v in stored['gates']['gates'].items()}
    for k, v in g['gates'].items(): assert v['value'] == pytest.approx(stored['gates']['gates'][k]['value'], abs=0.02), k
    assert stored['judge'] == WEB_JUDGE_DIR and stored['recipe']['recipe'] == json.loads(json.dumps(WEB_RECIPE))

def test_web_judge_sees_objects_where_the_negative_control_sees_bands():
    "What the web mixture changed, on the stored cards: the object alone and the conflict test named right, and stage (a)'s pull into the band five times weaker."
    w, n = CARDS['web']['card'], CARDS['negative']['card']
    assert w['object']['acc'] >= 0.8 > n['object']['acc'] and w['conflict']['object'] >= 0.8 > n['conflict']['object']
    assert w['ref_band_sentence']['break_even'] <= 1 < n['ref_band_sentence']['break_even']

def test_recipe_tries_verdicts_and_the_stored_one():
    "results/toyworld_judge_tries.json: each try's verdicts follow from its figures; the stored judge is the try with the most gates held."
    from semples.research.judge import JUDGE_TRIES_FILE
    tries = load_json(project_root()/JUDGE_TRIES_FILE)
    for k, t in tries.items(): assert card_gates(t['card']) == t['gates'], k
    held = {k: sum(g['holds'] for g in t['gates']['gates'].values()) for k, t in tries.items()}
    best = max(held, key=held.get)
    assert best.endswith('(stored)') and tries[best]['card']['object'] == CARDS['web']['card']['object']
    assert tries[best]['recipe'] == CARDS['web']['recipe']['recipe']

def test_oracle_row_claims_recompute():
    "results/toyworld_web_oracle_dev.json: every leak cut, the verdict and the judge's lambda_bg follow from the stored rows and cards."
    from semples.research.oracle import ORACLE_FILE, oracle_verdict
    o = load_json(project_root()/ORACLE_FILE)
    assert set(o['seeds']) <= {1, 2} and o['judge'] == WEB_JUDGE_DIR
    assert o['lambda_bg'] == round(CARDS['web']['card']['lambda_bg'], 2)
    for r in o['runs']:
        assert r['cut'] == pytest.approx([1 - x['background_leak'] / r['matching']['background_leak'] for x in r['oracle']], abs=1e-12)
        assert [x['lambda_ref'] for x in r['oracle']] == o['lambdas']
        for x in r['oracle']: assert x['selection']['tune_miou'][x['selection']['steps'].index(x['selection']['chosen'])] == max(x['selection']['tune_miou'])
    v = oracle_verdict(o)
    assert not v['holds'] and v['best_cut'] < 0.30 and max(o['lambdas']) >= 5   # the refinement fails the bar even with a perfect prompt
