//! Shard 0's heartbeat: the node's request rate and figures, and its
//! announcement in the cluster registry.

use super::Operations;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

/// Shard 0's heartbeat: measures the node's requests per second and, with
/// `cluster.redis`, refreshes its announcement in the registry, until the
/// node drains.
pub async fn announce_forever(ops: Rc<Operations>) {
    let every = Duration::from_millis(ops.config().cluster.heartbeat_ms.max(1));
    let node = ops.node();
    let answered = || -> u64 {
        node.gauges
            .iter()
            .map(|g| g.http_requests.load(Ordering::Relaxed) + g.tcp_frames.load(Ordering::Relaxed))
            .sum()
    };
    let (mut last, mut last_at) = (answered(), Instant::now());
    let mut tracker = crate::figures::FiguresTracker::default();
    let mut failing = false;
    for beat in 1.. {
        glommio::timer::sleep(every).await;
        if ops.is_draining() || node.is_shutting_down() {
            return;
        }
        let (now, now_at) = (answered(), Instant::now());
        let rate = (now - last) as f64 / now_at.duration_since(last_at).as_secs_f64().max(1e-3);
        node.requests_per_s.store(rate.to_bits(), Ordering::Relaxed);
        (last, last_at) = (now, now_at);
        let figures = tracker.next(node.totals(), ops.backend_states().await);
        if let Ok(mut f) = node.figures.lock() {
            *f = figures;
        }
        let Some(registry) = ops.services().registry() else {
            continue;
        };
        let me = crate::cluster::announcement(ops.config(), node, beat);
        match registry.announce(&me).await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("cluster registry reachable again");
            }
            Ok(()) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "cannot announce this node in the cluster registry");
            }
            Err(_) => {}
        }
    }
}
