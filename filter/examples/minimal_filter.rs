//! The least a routing-and-accounting filter can do, the honest floor of `make bench-filter`: read the
//! request headers once (one map read), set one header (the track), and at log time read the response
//! status and the request's duration. Our filter is measured against it; the no-op filter only prices
//! the wasm hop itself.

#[cfg(target_arch = "wasm32")]
mod minimal {
    use proxy_wasm::hostcalls as hc;
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, ContextType, MapType};

    struct Root;
    impl Context for Root {}
    impl RootContext for Root {
        fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Minimal { seen: 0, acc: 0 }))
        }
        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
    }

    struct Minimal {
        /// Number of request headers read (kept so the read is not optimised away).
        seen: usize,
        /// A stand-in for accounting: what was read at log time.
        acc: u64,
    }
    impl Context for Minimal {}

    fn int_property(path: Vec<&str>) -> u64 {
        hc::get_property(path)
            .ok()
            .flatten()
            .and_then(|b| b.get(..8).and_then(|s| <[u8; 8]>::try_from(s).ok()))
            .map_or(0, u64::from_le_bytes)
    }

    impl HttpContext for Minimal {
        fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
            let headers = hc::get_map_bytes(MapType::HttpRequestHeaders).unwrap_or_default();
            self.seen = headers.len();
            let _ = hc::set_map_value(MapType::HttpRequestHeaders, "x-dwcp-track", Some("stable"));
            Action::Continue
        }

        fn on_log(&mut self) {
            let status = int_property(vec!["response", "code"]);
            let duration_ns = int_property(vec!["request", "duration"]);
            self.acc = self
                .acc
                .wrapping_add(status)
                .wrapping_add(duration_ns / 1000)
                .wrapping_add(self.seen as u64);
        }
    }

    proxy_wasm::main! {{
        proxy_wasm::set_root_context(|_| Box::new(Root));
    }}
}
