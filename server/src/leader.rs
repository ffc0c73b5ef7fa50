//! One active server among replicas: the one holding a `coordination.k8s.io` Lease, renewed
//! a third of its duration at a time. A server that cannot renew in time stops working before
//! another may take over; one that stops gives the lease up at once.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease as LeaseObject, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;

/// A lease this server may hold.
pub struct Lease {
    api: Api<LeaseObject>,
    namespaces: Api<k8s_openapi::api::core::v1::Namespace>,
    namespace: String,
    name: String,
    identity: String,
    duration: Duration,
}

/// Who holds a lease, as read.
enum Holder {
    Nobody,
    Me,
    Other,
}

impl Lease {
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> Lease {
        Lease {
            api: Api::namespaced(client.clone(), namespace),
            namespaces: Api::all(client),
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            duration,
        }
    }

    /// Takes the lease if it is free, expired or ours; `Ok(false)` when another server holds
    /// it or won a race for it.
    pub async fn try_acquire(&self) -> Result<bool, kube::Error> {
        let now = jiff::Timestamp::now();
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            self.ensure_namespace().await?;
            let lease = LeaseObject {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(self.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now, now, 0)),
            };
            return lost_race(self.api.create(&PostParams::default(), &lease).await);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let transitions = spec.lease_transitions.unwrap_or(0);
        let (acquired, transitions) = match self.holder(&spec, now) {
            Holder::Other => return Ok(false),
            Holder::Me => (spec.acquire_time.map_or(now, |t| t.0), transitions),
            Holder::Nobody => (now, transitions + 1),
        };
        lease.spec = Some(self.spec(acquired, now, transitions));
        // The resourceVersion read makes the replace fail when another server wrote first.
        lost_race(
            self.api
                .replace(&self.name, &PostParams::default(), &lease)
                .await,
        )
    }

    /// Holds the lease until it is lost (another server took it, or it could not be renewed
    /// before it expired) or `stop` is raised; gives it up when stopped.
    pub async fn hold(&self, mut stop: tokio::sync::watch::Receiver<bool>) -> Held {
        let mut renewed = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.duration / 3) => {}
                () = stopped(&mut stop) => {
                    self.release().await;
                    return Held::Stopped;
                }
            }
            match self.try_acquire().await {
                Ok(true) => renewed = tokio::time::Instant::now(),
                Ok(false) => return Held::Lost("another server holds the lease".into()),
                Err(e) if renewed.elapsed() + self.duration / 3 >= self.duration => {
                    return Held::Lost(format!("could not renew the lease in time: {e}"));
                }
                Err(e) => tracing::warn!("renewing the lease failed, retrying: {e}"),
            }
        }
    }

    /// Gives the lease up so another server takes over at once.
    async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        let _ = self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await;
    }

    fn holder(&self, spec: &LeaseSpec, now: jiff::Timestamp) -> Holder {
        let Some(holder) = spec.holder_identity.clone().filter(|h| !h.is_empty()) else {
            return Holder::Nobody;
        };
        if holder == self.identity {
            return Holder::Me;
        }
        let seconds = i64::from(spec.lease_duration_seconds.unwrap_or(15));
        let expired = spec
            .renew_time
            .as_ref()
            .is_none_or(|t| t.0 + jiff::SignedDuration::from_secs(seconds) < now);
        if expired {
            Holder::Nobody
        } else {
            Holder::Other
        }
    }

    fn spec(&self, acquired: jiff::Timestamp, now: jiff::Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration.as_secs().max(1) as i32),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// The lease's namespace, made when the cluster lacks it (a fresh sandbox).
    async fn ensure_namespace(&self) -> Result<(), kube::Error> {
        if self.namespaces.get_opt(&self.namespace).await?.is_some() {
            return Ok(());
        }
        let ns = k8s_openapi::api::core::v1::Namespace {
            metadata: ObjectMeta {
                name: Some(self.namespace.clone()),
                ..ObjectMeta::default()
            },
            ..Default::default()
        };
        lost_race(self.namespaces.create(&PostParams::default(), &ns).await).map(|_| ())
    }
}

/// Why holding the lease ended.
pub enum Held {
    Stopped,
    Lost(String),
}

/// A write that another server's write beat (409 Conflict, or already exists) is a lost race,
/// not an error.
fn lost_race<T>(written: Result<T, kube::Error>) -> Result<bool, kube::Error> {
    match written {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Runs `work` while this server holds `lease`: waits for it, runs the work, and stops the
/// work when the lease is lost (then waits for it again) or `stop` is raised.
pub async fn while_leader<W, F>(
    lease: Lease,
    stop: tokio::sync::watch::Receiver<bool>,
    work: W,
) -> Result<(), String>
where
    W: Fn() -> F,
    F: std::future::Future<Output = Result<(), String>>,
{
    let mut waiting_said = false;
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        match lease.try_acquire().await {
            Ok(true) => {}
            Ok(false) => {
                if !waiting_said {
                    println!(
                        "waiting for the lease {}/{} (another server holds it)",
                        lease.namespace, lease.name
                    );
                    waiting_said = true;
                }
                let mut stop = stop.clone();
                tokio::select! {
                    () = tokio::time::sleep(lease.duration / 3) => {}
                    () = stopped(&mut stop) => return Ok(()),
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(
                    "cannot take the lease {}/{}: {e}",
                    lease.namespace,
                    lease.name
                );
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        }
        waiting_said = false;
        println!(
            "holding the lease {}/{}: reconciling",
            lease.namespace, lease.name
        );
        tokio::select! {
            held = lease.hold(stop.clone()) => match held {
                Held::Stopped => return Ok(()),
                Held::Lost(why) => println!("lost the lease ({why}): controllers stopped"),
            },
            worked = work() => worked?,
        }
    }
}

/// Resolves once `stop` is raised (or its sender is gone).
pub async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    // The guard wait_for returns is dropped here, before any caller awaits again.
    let _ = stop.wait_for(|stop| *stop).await;
}
