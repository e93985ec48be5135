//! Control plane: compiles configs, binds listeners, starts, reconfigures and stops workers.
//! Runs on the caller's thread (Python's); workers are reached only through their command
//! channel and eventfd.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::observe::Observer;
use crate::ring::eventfd::EventFd;
use crate::ring::probe;
use crate::route::Program;
use crate::worker::{listener, Command, ListenerSpec, Worker};

/// An engine failure, as one line of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineError(pub String);

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EngineError {}

type Result<T> = std::result::Result<T, EngineError>;

/// Configured address → (bound address, server index).
type Bound = BTreeMap<SocketAddr, (SocketAddr, usize)>;

fn fail<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> EngineError + '_ {
    move |e| EngineError(format!("{what}: {e}"))
}

struct WorkerHandle {
    tx: Sender<Command>,
    wake: Arc<EventFd>,
    thread: Option<JoinHandle<()>>,
}

impl WorkerHandle {
    fn send(&self, cmd: Command) {
        if self.tx.send(cmd).is_ok() {
            let _ = self.wake.signal();
        }
    }
}

/// Count of live workers, so `wait` can block without holding the engine.
#[derive(Default)]
pub struct Liveness {
    live: Mutex<usize>,
    changed: Condvar,
}

impl Liveness {
    /// Blocks until no worker runs, or `timeout` passes; true when none runs.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        let guard = self.live.lock().unwrap_or_else(|e| e.into_inner());
        match timeout {
            None => {
                let g = self
                    .changed
                    .wait_while(guard, |n| *n > 0)
                    .unwrap_or_else(|e| e.into_inner());
                *g == 0
            }
            Some(t) => {
                let (g, _) = self
                    .changed
                    .wait_timeout_while(guard, t, |n| *n > 0)
                    .unwrap_or_else(|e| e.into_inner());
                *g == 0
            }
        }
    }

    fn add(&self, n: isize) {
        let mut g = self.live.lock().unwrap_or_else(|e| e.into_inner());
        *g = (*g as isize + n) as usize;
        self.changed.notify_all();
    }
}

/// The engine: a compiled program plus, once started, its workers.
pub struct Engine {
    program: Arc<Program>,
    workers: usize,
    handles: Vec<WorkerHandle>,
    /// Bound addresses (as configured → as bound), server index.
    bound: Bound,
    /// Bound address → the workers' listening sockets for it (owned by the workers).
    fds: BTreeMap<SocketAddr, Vec<RawFd>>,
    liveness: Arc<Liveness>,
    /// Metrics and the access log's logger thread, for the engine's whole life.
    observer: Arc<Observer>,
}

fn listen_set(program: &Program) -> Result<BTreeMap<SocketAddr, usize>> {
    let mut out = BTreeMap::new();
    for (i, s) in program.servers.iter().enumerate() {
        for l in &s.listen {
            for a in &l.addrs {
                if let Some(prev) = out.insert(*a, i) {
                    if prev != i {
                        return Err(EngineError(format!(
                            "loading http app module: provision http: server {}: listener address repeated: tcp/{a} (already claimed by server '{}')",
                            s.name, program.servers[prev].name
                        )));
                    }
                }
            }
        }
    }
    Ok(out)
}

impl Engine {
    /// Compiles `config_json`; `workers` defaults to the number of CPUs.
    pub fn new(config_json: &str, workers: Option<usize>) -> Result<Engine> {
        let program = Program::compile(config_json).map_err(|e| EngineError(e.0))?;
        listen_set(&program)?;
        let workers = workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1);
        Ok(Engine {
            program: Arc::new(program),
            workers,
            handles: Vec::new(),
            bound: BTreeMap::new(),
            fds: BTreeMap::new(),
            liveness: Arc::new(Liveness::default()),
            observer: Arc::new(Observer::start().map_err(fail("starting the logger thread"))?),
        })
    }

    pub fn liveness(&self) -> Arc<Liveness> {
        Arc::clone(&self.liveness)
    }

    pub fn running(&self) -> bool {
        !self.handles.is_empty()
    }

    /// Binds every listen address once per worker. Port 0 is resolved by the first bind
    /// and reused, so all workers share one port.
    fn bind_all(
        &self,
        wanted: &BTreeMap<SocketAddr, usize>,
    ) -> Result<(Vec<Vec<ListenerSpec>>, Bound)> {
        let mut per_worker: Vec<Vec<ListenerSpec>> =
            (0..self.workers).map(|_| Vec::new()).collect();
        let mut bound = BTreeMap::new();
        for (addr, server) in wanted {
            if let Some((actual, _)) = self.bound.get(addr) {
                bound.insert(*addr, (*actual, *server));
                for specs in &mut per_worker {
                    specs.push(ListenerSpec {
                        addr: *actual,
                        server: *server,
                        socket: None,
                    });
                }
                continue;
            }
            let mut actual = *addr;
            for specs in per_worker.iter_mut() {
                let fd = listener::bind(actual).map_err(|e| {
                    EngineError(format!(
                        "loading http app module: starting server: listening on tcp/{addr}: {e}"
                    ))
                })?;
                actual = listener::local_addr(&fd).map_err(fail("listener address"))?;
                specs.push(ListenerSpec {
                    addr: actual,
                    server: *server,
                    socket: Some(fd),
                });
            }
            bound.insert(*addr, (actual, *server));
        }
        Ok((per_worker, bound))
    }

    /// The listening fds once `per_worker` serves `bound`: new sockets, and kept ones.
    fn fds_after(
        &self,
        per_worker: &[Vec<ListenerSpec>],
        bound: &Bound,
    ) -> BTreeMap<SocketAddr, Vec<RawFd>> {
        let mut fds: BTreeMap<SocketAddr, Vec<RawFd>> = BTreeMap::new();
        for spec in per_worker.iter().flatten() {
            if let Some(fd) = &spec.socket {
                fds.entry(spec.addr).or_default().push(fd.as_raw_fd());
            }
        }
        for (actual, _) in bound.values() {
            if let Some(kept) = self.fds.get(actual) {
                fds.entry(*actual).or_insert_with(|| kept.clone());
            }
        }
        fds
    }

    /// Binds listeners and starts the workers; returns once all are serving.
    pub fn start(&mut self) -> Result<()> {
        if self.running() {
            return Err(EngineError("engine already started".into()));
        }
        let report = probe::probe();
        if let Some(why) = report.unusable() {
            return Err(EngineError(why));
        }
        let wanted = listen_set(&self.program)?;
        let (per_worker, bound) = self.bind_all(&wanted)?;
        self.fds = self.fds_after(&per_worker, &bound);
        let (ready_tx, ready_rx) = mpsc::channel::<std::io::Result<()>>();
        for (n, specs) in per_worker.into_iter().enumerate() {
            let (tx, rx) = mpsc::channel();
            let wake = Arc::new(EventFd::new().map_err(fail("eventfd"))?);
            let program = Arc::clone(&self.program);
            let ready = ready_tx.clone();
            let liveness = Arc::clone(&self.liveness);
            let worker_wake = Arc::clone(&wake);
            let observer = Arc::clone(&self.observer);
            liveness.add(1);
            let thread = std::thread::Builder::new()
                .name(format!("zeroserve-w{n}"))
                .spawn(move || {
                    crate::observe::enter_worker(&observer);
                    drop(observer);
                    match Worker::new(program, specs, rx, worker_wake) {
                        Ok(w) => {
                            let _ = ready.send(Ok(()));
                            if let Err(e) = w.run() {
                                eprintln!("zeroserve: worker {n} stopped: {e}");
                            }
                        }
                        Err(e) => {
                            let _ = ready.send(Err(e));
                        }
                    }
                    liveness.add(-1);
                })
                .map_err(fail("spawning worker"))?;
            self.handles.push(WorkerHandle {
                tx,
                wake,
                thread: Some(thread),
            });
        }
        drop(ready_tx);
        let mut first_err = None;
        for _ in 0..self.workers {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_err.get_or_insert(e.to_string());
                }
                Err(_) => {
                    first_err.get_or_insert("worker exited during start".into());
                }
            }
        }
        self.bound = bound;
        if let Some(e) = first_err {
            self.stop(Duration::ZERO);
            return Err(EngineError(format!("starting worker: {e}")));
        }
        Ok(())
    }

    /// Compiles a new config aside and swaps it into every worker; on error nothing changes.
    pub fn reload(&mut self, config_json: &str) -> Result<()> {
        let program = Arc::new(Program::compile(config_json).map_err(|e| EngineError(e.0))?);
        let wanted = listen_set(&program)?;
        if !self.running() {
            self.program = program;
            return Ok(());
        }
        let (per_worker, bound) = self.bind_all(&wanted)?;
        let fds = self.fds_after(&per_worker, &bound);
        let (ack_tx, ack_rx) = mpsc::channel();
        for (h, specs) in self.handles.iter().zip(per_worker) {
            h.send(Command::Swap {
                program: Arc::clone(&program),
                listeners: specs,
                ack: ack_tx.clone(),
            });
        }
        drop(ack_tx);
        for _ in 0..self.handles.len() {
            if ack_rx.recv_timeout(Duration::from_secs(10)).is_err() {
                return Err(EngineError(
                    "reload: a worker did not acknowledge the new config".into(),
                ));
            }
        }
        self.fds = fds;
        self.program = program;
        self.bound = bound;
        Ok(())
    }

    /// Stops accepting, lets in-flight exchanges finish for up to `grace`, joins workers.
    pub fn stop(&mut self, grace: Duration) {
        for h in &self.handles {
            h.send(Command::Stop { grace });
        }
        for h in &mut self.handles {
            if let Some(t) = h.thread.take() {
                let _ = t.join();
            }
        }
        self.handles.clear();
        self.bound.clear();
        self.fds.clear();
    }

    /// Caddy's `caddy_http_*` metrics summed over the workers, in Prometheus text format.
    pub fn metrics(&self) -> String {
        self.observer.metrics()
    }

    /// The workers' listening sockets, every address; valid while the engine runs.
    pub fn listener_fds(&self) -> Vec<RawFd> {
        self.fds.values().flatten().copied().collect()
    }

    /// Addresses being served, as bound (`host:port`).
    pub fn listen_addresses(&self) -> Vec<String> {
        let mut out: Vec<String> = self.bound.values().map(|(a, _)| a.to_string()).collect();
        out.dedup();
        out
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop(Duration::ZERO);
    }
}
