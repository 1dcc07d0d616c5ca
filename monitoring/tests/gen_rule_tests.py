#!/usr/bin/env python3
"""Writes dwcp.rules.test.yaml beside this file: promtool unit tests for ../rules/dwcp.rules.yaml.

The expected labels and annotations below are written out by hand, as the alert's receiver should see
them; they are NOT read from the rule file (a test derived from the rules under test would agree with any
change to them). Changing an alert's labels or wording means changing EXPECTED here too, then re-running:
    python3 monitoring/tests/gen_rule_tests.py            # rewrite the test file
    python3 monitoring/tests/gen_rule_tests.py --check    # fail if the committed file differs (CI)"""
import os, sys
os.chdir(os.path.dirname(os.path.abspath(__file__)))
import yaml

# alert -> (its static labels, its annotations with the alert's own labels as {name} placeholders).
EXPECTED = {
    'DwcpTriggerErrorRate': ({'severity': 'page', 'trigger': '1'},
        {'summary': "Rollout {rollout}: canary error rate > 1.5x stable's (sequential test agrees)",
         'runbook': 'dwcp-analyzer events {rollout}; the rollout is aborted automatically'}),
    'DwcpTriggerP99': ({'severity': 'page', 'trigger': '2'},
        {'summary': "Rollout {rollout}: canary p99 > 2x stable's p99"}),
    'DwcpTriggerSuccessRate': ({'severity': 'page', 'trigger': '3'},
        {'summary': 'Rollout {rollout}: canary success rate < 95 %'}),
    'DwcpTriggerThroughput': ({'severity': 'page', 'trigger': '4'},
        {'summary': 'Rollout {rollout}: canary throughput < 80 % of its assigned share'}),
    'DwcpTriggerByzantine': ({'severity': 'page', 'trigger': '5'},
        {'summary': 'Engine {engine}: Byzantine behaviour detected (immediate rollback)'}),
    'DwcpTriggerIntegrity': ({'severity': 'page', 'trigger': '6'},
        {'summary': 'Engine {engine}: data-integrity violation (conflicting commit, checksum, over-commit)'}),
    'DwcpTriggerMemory': ({'severity': 'page', 'trigger': '7'},
        {'summary': 'Engine {engine}: memory above 95 % of its budget for 5 min'}),
    'DwcpTriggerBreakerStorm': ({'severity': 'page', 'trigger': '8'},
        {'summary': 'Engine {engine}: circuit-breaker storm (> 10 opens in 5 min)'}),
    'DwcpRollbackExecuted': ({'severity': 'page'},
        {'summary': 'Rollout {rollout} was rolled back; every filter routes it to stable',
         'runbook': 'Evidence: dwcp-analyzer events {rollout}. Resume by hand once fixed.'}),
    'DwcpAnalyzerDown': ({'severity': 'page'},
        {'summary': 'The dwcp companion is not scraped: rollouts are frozen, filters keep their last state'}),
    'DwcpFilterStateStale': ({'severity': 'warn'},
        {'summary': 'dwcp filter on pod {pod} runs on stale rollout state (no sync with the companion)'}),
    'DwcpShadowUnreachable': ({'severity': 'warn'},
        {'summary': 'Shadow copies of rollout {rollout} mostly fail as side calls: check the shadow cluster and shadow.timeout_ms'}),
    'DwcpFilterConfigRejected': ({'severity': 'page'},
        {'summary': 'dwcp filter is not running on pod {pod} (pluginConfig rejected or VM crashing)'}),
    'DwcpTrainGateOverdue': ({'severity': 'ticket'},
        {'summary': 'Release train: rollout {rollout} has waited for its gates past its planned start',
         'runbook': 'dwcp-analyzer plan explain {rollout} (which gate is closed and why)'}),
    'DwcpAvailabilityBudgetBurnFast': ({'severity': 'page', 'slo': 'availability-99.9'},
        {'summary': "Rollout {rollout} burns its 99.9 % availability budget fast (2-5 % of 30 days' budget per hour)"}),
    'DwcpAvailabilityBudgetBurnSlow': ({'severity': 'ticket', 'slo': 'availability-99.9'},
        {'summary': 'Rollout {rollout} burns its 99.9 % availability budget steadily'}),
    'DwcpLatencyBudgetBurnFast': ({'severity': 'page', 'slo': 'latency-p95-500ms'},
        {'summary': 'Rollout {rollout}: far more than 5 % of requests slower than 500 ms (p95 SLO burning fast)'}),
    'DwcpLatencyBudgetBurnSlow': ({'severity': 'ticket', 'slo': 'latency-p95-500ms'},
        {'summary': 'Rollout {rollout}: p95 latency SLO (500 ms) burning steadily'}),
}

def exp(name, **labels):
    """One expected firing alert: the series' labels (given), the alert's static labels and its
    annotations filled with those labels, all from EXPECTED."""
    static, ann = EXPECTED[name]
    l = dict(labels); l.update(static)
    return {'exp_labels': l, 'exp_annotations': {k: v.format(**l) for k, v in ann.items()}}
def at(t, name, *fired):
    return {'eval_time': t, 'alertname': name, 'exp_alerts': list(fired)}
A = 'job="dwcp-analyzer"'
E = 'job="dwcp-envoy-stats"'
tests = []
series, t_alerts = [], []
for trig, name in [("1:error_rate","DwcpTriggerErrorRate"),("2:p99","DwcpTriggerP99"),("3:success","DwcpTriggerSuccessRate"),("4:throughput","DwcpTriggerThroughput")]:
    series.append({'series': f'dwcp_rollout_trigger_failing{{{A},rollout="a",trigger="{trig}"}}', 'values': '0 0 0 1 1 1 1'})
    series.append({'series': f'dwcp_rollout_trigger_failing{{{A},rollout="b",trigger="{trig}"}}', 'values': '0 0 0 0 0 0 0'})
    t_alerts.append(at('2m', name))
    t_alerts.append(at('5m', name, exp(name, rollout='a')))
tests.append({'name': 'triggers 1-4: the companion verdict fails for rollout a from minute 3, never for b', 'interval': '1m', 'input_series': series, 'alert_rule_test': t_alerts})
tests.append({'name': 'triggers 5, 6, 8: engine events (byzantine, integrity, > 10 breaker opens in 5 min)', 'interval': '1m',
  'input_series': [
    {'series': f'dwcp_engine_events_total{{{A},engine="probft",kind="byzantine"}}', 'values': '0 0 0 0 1 1 1 1 1 1 1 1 1 1 1'},
    {'series': f'dwcp_engine_events_total{{{A},engine="bullshark",kind="byzantine"}}', 'values': '0x14'},
    {'series': f'dwcp_engine_events_total{{{A},engine="bullshark",kind="integrity_violation"}}', 'values': '0 0 0 0 2 2 2 2 2 2 2 2 2 2 2'},
    {'series': f'dwcp_engine_events_total{{{A},engine="probft",kind="integrity_violation"}}', 'values': '0x14'},
    {'series': f'dwcp_engine_events_total{{{A},engine="tpbft",kind="breaker_open"}}', 'values': '0+4x14'},
    {'series': f'dwcp_engine_events_total{{{A},engine="maddpg",kind="breaker_open"}}', 'values': '0+1x14'},
  ],
  'alert_rule_test': [
    at('3m', 'DwcpTriggerByzantine'),
    at('6m', 'DwcpTriggerByzantine', exp('DwcpTriggerByzantine', engine='probft')),
    at('14m', 'DwcpTriggerByzantine'),
    at('3m', 'DwcpTriggerIntegrity'),
    at('6m', 'DwcpTriggerIntegrity', exp('DwcpTriggerIntegrity', engine='bullshark')),
    at('14m', 'DwcpTriggerIntegrity'),
    at('1m', 'DwcpTriggerBreakerStorm'),
    at('10m', 'DwcpTriggerBreakerStorm', exp('DwcpTriggerBreakerStorm', engine='tpbft')),
  ]})
tests.append({'name': 'trigger 7: memory > 95 % of budget for 5 min; a dip restarts the clock', 'interval': '1m',
  'input_series': [
    {'series': f'dwcp_engine_memory_ratio{{{A},engine="compression"}}', 'values': '0.97x12'},
    {'series': f'dwcp_engine_memory_ratio{{{A},engine="allocator"}}', 'values': '0.97 0.97 0.97 0.5 0.97 0.97 0.97 0.97 0.97 0.97 0.97 0.97 0.97'},
    {'series': f'dwcp_engine_memory_ratio{{{A},engine="bullshark"}}', 'values': '0.9x12'},
  ],
  'alert_rule_test': [
    at('4m', 'DwcpTriggerMemory'),
    at('6m', 'DwcpTriggerMemory', exp('DwcpTriggerMemory', engine='compression', job='dwcp-analyzer')),
    at('10m', 'DwcpTriggerMemory', exp('DwcpTriggerMemory', engine='compression', job='dwcp-analyzer'), exp('DwcpTriggerMemory', engine='allocator', job='dwcp-analyzer')),
  ]})
tests.append({'name': 'rollback executed: the counter moved in the last 10 min', 'interval': '1m',
  'input_series': [
    {'series': f'dwcp_rollbacks_total{{{A},rollout="checkout"}}', 'values': '0 0 0 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1'},
    {'series': f'dwcp_rollbacks_total{{{A},rollout="search"}}', 'values': '0x19'},
  ],
  'alert_rule_test': [
    at('2m', 'DwcpRollbackExecuted'),
    at('5m', 'DwcpRollbackExecuted', exp('DwcpRollbackExecuted', rollout='checkout')),
    at('19m', 'DwcpRollbackExecuted'),
  ]})
tests.append({'name': 'analyzer down: the scrape fails for 1 min', 'interval': '1m',
  'input_series': [{'series': f'up{{{A},instance="10.0.0.7:8080"}}', 'values': '1 1 1 0 0 0 0'}],
  'alert_rule_test': [
    at('2m', 'DwcpAnalyzerDown'),
    at('3m', 'DwcpAnalyzerDown'),
    at('5m', 'DwcpAnalyzerDown', exp('DwcpAnalyzerDown', job='dwcp-analyzer', instance='10.0.0.7:8080')),
  ]})
tests.append({'name': 'analyzer down: no target at all', 'interval': '1m',
  'input_series': [{'series': 'up{job="other"}', 'values': '1x5'}],
  'alert_rule_test': [
    at('0m', 'DwcpAnalyzerDown'),
    at('3m', 'DwcpAnalyzerDown', exp('DwcpAnalyzerDown', job='dwcp-analyzer')),
  ]})
tests.append({'name': 'filter state stale for 2 min on one proxy', 'interval': '1m',
  'input_series': [
    {'series': f'dwcp_state_stale{{{E},instance="10.0.1.1:15090",pod="checkout-7d9"}}', 'values': '0 0 1 1 1 1 1 1'},
    {'series': f'dwcp_state_stale{{{E},instance="10.0.1.2:15090",pod="cart-5f1"}}', 'values': '0x7'},
  ],
  'alert_rule_test': [
    at('3m', 'DwcpFilterStateStale'),
    at('5m', 'DwcpFilterStateStale', exp('DwcpFilterStateStale', job='dwcp-envoy-stats', pod='checkout-7d9')),
  ]})
tests.append({'name': 'filter config rejected: Wasm VMs created on a proxy, none alive', 'interval': '1m',
  'input_series': [
    {'series': f'envoy_wasm_envoy_wasm_runtime_v8_created{{{E},instance="10.0.1.1:15090",pod="checkout-7d9"}}', 'values': '3 3 6 6 6 6 6'},
    {'series': f'envoy_wasm_envoy_wasm_runtime_v8_active{{{E},instance="10.0.1.1:15090",pod="checkout-7d9"}}', 'values': '3 3 0 0 0 0 0'},
    {'series': f'envoy_wasm_envoy_wasm_runtime_v8_created{{{E},instance="10.0.1.2:15090",pod="cart-5f1"}}', 'values': '3x6'},
    {'series': f'envoy_wasm_envoy_wasm_runtime_v8_active{{{E},instance="10.0.1.2:15090",pod="cart-5f1"}}', 'values': '3x6'},
  ],
  'alert_rule_test': [
    at('1m', 'DwcpFilterConfigRejected'),
    at('5m', 'DwcpFilterConfigRejected', exp('DwcpFilterConfigRejected', job='dwcp-envoy-stats', pod='checkout-7d9')),
  ]})
tests.append({'name': 'shadow unreachable: rollout a loses 90 % of its copies from minute 2, b 1 %', 'interval': '1m',
  'input_series': [
    {'series': f'dwcp_rollout_shadow_total{{{A},rollout="a",event="sent"}}', 'values': '0+100x15'},
    {'series': f'dwcp_rollout_shadow_total{{{A},rollout="a",event="side_call_failed"}}', 'values': '0 0 0+90x13'},
    {'series': f'dwcp_rollout_shadow_total{{{A},rollout="b",event="sent"}}', 'values': '0+100x15'},
    {'series': f'dwcp_rollout_shadow_total{{{A},rollout="b",event="side_call_failed"}}', 'values': '0+1x15'},
  ],
  'alert_rule_test': [
    at('3m', 'DwcpShadowUnreachable'),
    at('10m', 'DwcpShadowUnreachable', exp('DwcpShadowUnreachable', rollout='a')),
  ]})
tests.append({'name': 'train gate overdue: bullshark waits past its planned start from minute 2; probft is late for 10 min only; maddpg on time', 'interval': '1m',
  'input_series': [
    {'series': f'dwcp_train_gate_overdue_seconds{{{A},rollout="bullshark"}}', 'values': '0 0 60+60x30'},
    {'series': f'dwcp_train_gate_overdue_seconds{{{A},rollout="probft"}}', 'values': '0 0 60+60x9 0x20'},
    {'series': f'dwcp_train_gate_overdue_seconds{{{A},rollout="maddpg"}}', 'values': '0x32'},
  ],
  'alert_rule_test': [
    at('10m', 'DwcpTrainGateOverdue'),
    at('20m', 'DwcpTrainGateOverdue', exp('DwcpTrainGateOverdue', rollout='bullshark')),
    at('30m', 'DwcpTrainGateOverdue', exp('DwcpTrainGateOverdue', rollout='bullshark')),
  ]})
slo = []
for ro, err, fast in [('hot', 5, 20), ('warm', 0.5, 80), ('ok', 0.02, 99)]:
    lab = f'{E},rollout="{ro}",track="canary",segment="standard"'
    slo += [
      {'series': f'dwcp_requests_total{{{lab}}}', 'values': '0+100x150'},
      {'series': f'dwcp_errors_total{{{lab}}}', 'values': f'0+{err}x150'},
      {'series': f'dwcp_request_duration_seconds_count{{{lab}}}', 'values': '0+100x150'},
      {'series': f'dwcp_request_duration_seconds_bucket{{{lab},le="0.5"}}', 'values': f'0+{fast}x150'},
    ]
tests.append({'name': 'SLO burn rates: hot burns fast (5 % errors, 80 % slow), warm slowly (0.5 %, 20 %), ok stays within budget (0.02 %, 1 %)',
  'interval': '1m', 'input_series': slo,
  'alert_rule_test': [
    at('70m', 'DwcpAvailabilityBudgetBurnFast', exp('DwcpAvailabilityBudgetBurnFast', rollout='hot')),
    at('70m', 'DwcpAvailabilityBudgetBurnSlow', exp('DwcpAvailabilityBudgetBurnSlow', rollout='hot'), exp('DwcpAvailabilityBudgetBurnSlow', rollout='warm')),
    at('70m', 'DwcpLatencyBudgetBurnFast', exp('DwcpLatencyBudgetBurnFast', rollout='hot')),
    at('70m', 'DwcpLatencyBudgetBurnSlow', exp('DwcpLatencyBudgetBurnSlow', rollout='hot'), exp('DwcpLatencyBudgetBurnSlow', rollout='warm')),
  ],
  'promql_expr_test': [
    {'expr': 'round(rollout:dwcp_error_ratio:rate1h{rollout="warm"}, 0.0001)', 'eval_time': '70m', 'exp_samples': [{'labels': '{rollout="warm"}', 'value': 0.005}]},
    {'expr': 'round(rollout:dwcp_slow_ratio:rate5m{rollout="warm"}, 0.001)', 'eval_time': '70m', 'exp_samples': [{'labels': '{rollout="warm"}', 'value': 0.2}]},
  ]})
tests.append({'name': 'SLO burn rates: a one-minute 50 % error spike after 6 h of clean traffic does not page (5m window burns, 1h and 6h do not)', 'interval': '1m',
  'input_series': [
    {'series': f'dwcp_requests_total{{{E},rollout="blip",track="stable",segment="standard"}}', 'values': '0+100x400'},
    {'series': f'dwcp_errors_total{{{E},rollout="blip",track="stable",segment="standard"}}', 'values': '0x360 50x40'},
  ],
  'promql_expr_test': [
    {'expr': 'round(rollout:dwcp_error_ratio:rate5m{rollout="blip"}, 0.001) > 14.4 * 0.001', 'eval_time': '363m', 'exp_samples': [{'labels': '{rollout="blip"}', 'value': 0.1}]},
  ],
  'alert_rule_test': [at('363m', 'DwcpAvailabilityBudgetBurnFast'), at('363m', 'DwcpLatencyBudgetBurnFast')]})
lab = f'{E},rollout="calm",track="stable",segment="standard"'
tests.append({'name': 'SLO burn rates: within both budgets for 2 h (0.05 % errors, 2 % slower than 500 ms): no alert', 'interval': '1m',
  'input_series': [
    {'series': f'dwcp_requests_total{{{lab}}}', 'values': '0+100x150'},
    {'series': f'dwcp_errors_total{{{lab}}}', 'values': '0+0.05x150'},
    {'series': f'dwcp_request_duration_seconds_count{{{lab}}}', 'values': '0+100x150'},
    {'series': f'dwcp_request_duration_seconds_bucket{{{lab},le="0.5"}}', 'values': '0+98x150'},
  ],
  'alert_rule_test': [at('120m', a) for a in ('DwcpAvailabilityBudgetBurnFast', 'DwcpAvailabilityBudgetBurnSlow', 'DwcpLatencyBudgetBurnFast', 'DwcpLatencyBudgetBurnSlow')]})
doc = {'rule_files': ['../rules/dwcp.rules.yaml'], 'evaluation_interval': '1m', 'tests': tests}
class D(yaml.SafeDumper): pass
def rep(d, s):
    style = "'" if ('"' in s or '{' in s or ': ' in s or s.startswith(('*', '&', '!', '%'))) else None
    return d.represent_scalar('tag:yaml.org,2002:str', s, style=style)
D.add_representer(str, rep)
hdr = ('# promtool unit tests: every alert in ../rules/dwcp.rules.yaml fires in one case and stays silent in\n'
       '# another, on synthetic series. Run: promtool test rules monitoring/tests/dwcp.rules.test.yaml\n'
       '# GENERATED by gen_rule_tests.py beside this file (expected labels and annotations written there by\n'
       '# hand, not read from the rules): edit that, then re-run it.\n')
text = hdr + yaml.dump(doc, Dumper=D, sort_keys=False, width=1000)
out = 'dwcp.rules.test.yaml'
if sys.argv[1:] == ['--check']:
    if open(out).read() != text:
        sys.exit(f'FAIL monitoring/tests/{out} is not what gen_rule_tests.py writes: re-run it')
    print(f'ok   monitoring/tests/{out} is what gen_rule_tests.py writes')
else:
    open(out, 'w').write(text)
