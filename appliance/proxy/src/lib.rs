//! zeroserve's HTTP engine: io_uring workers serving a compiled Caddy route program.
//! This file holds only the Python module (`zeroserve._engine`); see `engine` for the
//! control plane, `worker` for the data plane, `http1` and `route` for the sans-IO parts.

#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(clippy::missing_safety_doc)]

pub mod buf;
pub mod engine;
pub mod http1;
pub mod observe;
pub mod ring;
pub mod route;
pub mod worker;

use std::sync::Mutex;
use std::time::Duration;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyDict;

create_exception!(
    _engine,
    EngineError,
    PyException,
    "Engine configuration or runtime error."
);

fn py_err(e: engine::EngineError) -> PyErr {
    EngineError::new_err(e.0)
}

/// Python handle on an engine. Every method is a short call into the control plane; the
/// blocking ones release the GIL.
#[pyclass(name = "Engine", module = "zeroserve._engine")]
struct PyEngine {
    inner: Mutex<engine::Engine>,
    liveness: std::sync::Arc<engine::Liveness>,
}

impl PyEngine {
    fn lock(&self) -> std::sync::MutexGuard<'_, engine::Engine> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[pymethods]
impl PyEngine {
    #[new]
    #[pyo3(signature = (config_json, workers=None))]
    fn new(config_json: &str, workers: Option<usize>) -> PyResult<Self> {
        let e = engine::Engine::new(config_json, workers).map_err(py_err)?;
        Ok(PyEngine {
            liveness: e.liveness(),
            inner: Mutex::new(e),
        })
    }

    fn start(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.lock().start()).map_err(py_err)
    }

    fn reload(&self, py: Python<'_>, config_json: &str) -> PyResult<()> {
        py.detach(|| self.lock().reload(config_json))
            .map_err(py_err)
    }

    #[pyo3(signature = (grace_seconds=0.0))]
    fn stop(&self, py: Python<'_>, grace_seconds: f64) -> PyResult<()> {
        if !grace_seconds.is_finite() || grace_seconds < 0.0 {
            return Err(EngineError::new_err(
                "grace_seconds must be a non-negative number",
            ));
        }
        py.detach(|| self.lock().stop(Duration::from_secs_f64(grace_seconds)));
        Ok(())
    }

    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let timeout = match timeout {
            Some(t) if !t.is_finite() || t < 0.0 => {
                return Err(EngineError::new_err(
                    "timeout must be a non-negative number",
                ))
            }
            t => t.map(Duration::from_secs_f64),
        };
        let liveness = std::sync::Arc::clone(&self.liveness);
        Ok(py.detach(move || liveness.wait(timeout)))
    }

    fn listen_addresses(&self) -> Vec<String> {
        self.lock().listen_addresses()
    }

    fn listener_fds(&self) -> Vec<i32> {
        self.lock().listener_fds()
    }

    /// Caddy's `GET /reverse_proxy/upstreams`: every upstream address in use by any
    /// `reverse_proxy` handler of this process, with its in-flight requests and recent fails.
    fn upstreams<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        route::handlers::reverse_proxy::hosts::upstreams_report()
            .into_iter()
            .map(|(address, num_requests, fails)| {
                let d = PyDict::new(py);
                d.set_item("address", address)?;
                d.set_item("num_requests", num_requests)?;
                d.set_item("fails", fails)?;
                Ok(d)
            })
            .collect()
    }

    /// Caddy's `caddy_http_*` metrics summed over the workers, and the count of access log
    /// lines dropped, in Prometheus text format.
    fn metrics(&self) -> String {
        self.lock().metrics()
    }

    /// Settings of the process-wide response cache (the `cache` handler): the deployment
    /// and the request header or cookie naming the experiment arm, both part of every key,
    /// and the memory bound (bytes).
    #[pyo3(signature = (deploy_id="", experiment_header=None, experiment_cookie=None, max_bytes=None))]
    fn configure_cache(
        &self,
        deploy_id: &str,
        experiment_header: Option<String>,
        experiment_cookie: Option<String>,
        max_bytes: Option<usize>,
    ) -> PyResult<()> {
        use route::handlers::cache::{key::ExperimentSource, store};
        let experiment = match (experiment_header, experiment_cookie) {
            (Some(_), Some(_)) => {
                return Err(EngineError::new_err(
                    "cache: experiment_header and experiment_cookie exclude each other",
                ))
            }
            (Some(h), None) => ExperimentSource::Header(h),
            (None, Some(c)) => ExperimentSource::Cookie(c),
            (None, None) => ExperimentSource::None,
        };
        store::configure(store::Settings {
            deploy: deploy_id.to_owned(),
            experiment,
            max_bytes: max_bytes.unwrap_or(store::DEFAULT_MAX_BYTES),
        });
        Ok(())
    }

    /// Drops cached responses whose key (as shown in `Cache-Status`) matches the regexp
    /// `pattern`, or every one; returns how many went.
    #[pyo3(signature = (pattern=None))]
    fn purge_cache(&self, pattern: Option<&str>) -> PyResult<usize> {
        let re = pattern
            .map(regex::Regex::new)
            .transpose()
            .map_err(|e| EngineError::new_err(format!("purge: invalid regexp: {e}")))?;
        Ok(route::handlers::cache::store::purge(re.as_ref()))
    }

    /// The cache's size: entries, bytes, bound, current deployment.
    fn cache_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        use route::handlers::cache::store;
        let (entries, bytes, max_bytes) = store::stats();
        let d = PyDict::new(py);
        d.set_item("entries", entries)?;
        d.set_item("bytes", bytes)?;
        d.set_item("max_bytes", max_bytes)?;
        d.set_item("deploy_id", store::settings().deploy.clone())?;
        Ok(d)
    }
}

/// io_uring support on this kernel, for `zeroserve doctor`.
#[pyfunction]
fn probe(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let report = ring::probe::probe();
    let out = PyDict::new(py);
    out.set_item("setup", report.setup)?;
    let ops = PyDict::new(py);
    for (name, ok) in &report.opcodes {
        ops.set_item(*name, *ok)?;
    }
    out.set_item("opcodes", ops)?;
    out.set_item("error", report.error)?;
    Ok(out)
}

#[pymodule]
#[pyo3(name = "_engine")]
fn engine_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyEngine>()?;
    m.add("EngineError", m.py().get_type::<EngineError>())?;
    m.add_function(wrap_pyfunction!(probe, m)?)?;
    Ok(())
}
