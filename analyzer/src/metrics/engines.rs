//! The engine host's part of `/metrics`: circuit breakers and memory of the DWCP Manager.

use super::Out;
use dwcp_core::names::*;

/// Engine-host metrics: breaker state per component (0 closed, 1 half-open, 2 open), the worst per engine.
pub fn render_engines(host: &crate::engines_api::EngineHost) -> String {
    use dwcp_engines::manager::BreakerState;
    let mut o = Out(String::new());
    let m = host.manager.lock().unwrap_or_else(|p| p.into_inner());
    let breakers = m.breakers();
    let report = m.health_report();
    drop(m);
    let code = |s: BreakerState| match s {
        BreakerState::Closed => 0.0,
        BreakerState::HalfOpen => 1.0,
        BreakerState::Open => 2.0,
    };
    o.head(&ENGINE_BREAKER_STATE);
    let worst = breakers.values().map(|b| code(b.state)).fold(0.0, f64::max);
    o.line(&ENGINE_BREAKER_STATE, &[("engine", "manager")], worst);
    o.head(&ENGINE_COMPONENT_BREAKER_STATE);
    for (name, b) in &breakers {
        o.line(
            &ENGINE_COMPONENT_BREAKER_STATE,
            &[("engine", "manager"), ("component", name)],
            code(b.state),
        );
    }
    o.head(&ENGINE_BREAKER_OPENS);
    for (name, b) in &breakers {
        o.line(
            &ENGINE_BREAKER_OPENS,
            &[("engine", "manager"), ("component", name)],
            b.opens_total as f64,
        );
    }
    o.head(&ENGINE_MEMORY_BYTES);
    o.line(
        &ENGINE_MEMORY_BYTES,
        &[("engine", "manager"), ("kind", "used")],
        report.memory_used_bytes as f64,
    );
    o.line(
        &ENGINE_MEMORY_BYTES,
        &[("engine", "manager"), ("kind", "budget")],
        report.memory_budget_bytes as f64,
    );
    o.head(&ENGINE_CLIENT_ERRORS);
    for (reason, n) in host.client_errors() {
        o.line(
            &ENGINE_CLIENT_ERRORS,
            &[
                ("engine", crate::engines_api::COMPRESSION_ENGINE),
                ("reason", reason),
            ],
            n as f64,
        );
    }
    o.0.push_str(&host.allocator_metrics());
    o.0.push_str(&crate::consensus::metrics::render(
        host.consensus.get().map(|c| c.as_ref()),
    ));
    o.0
}
