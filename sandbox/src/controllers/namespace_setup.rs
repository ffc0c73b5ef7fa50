//! What kube-controller-manager puts in every live namespace: the `default` ServiceAccount
//! (the service account controller) and the `kube-root-ca.crt` ConfigMap with the cluster's CA
//! (the root CA publisher). Both are made again when deleted, and the ConfigMap is put back
//! when someone changes it, as the real controllers do; pods and charts count on them.

use serde_json::json;

use super::common::{resource, write_main};
use super::{Ctx, Outcome};
use crate::error::ApiResult;
use crate::ops::{self, Part, WriteKind};
use crate::store::{ObjKey, Tx};

pub const ROOT_CA: &str = "kube-root-ca.crt";
const ACCOUNT: &str = "default";
const ACCOUNTS_MANAGER: &str = "kip-sandbox-serviceaccount-controller";
const CA_MANAGER: &str = "kip-sandbox-root-ca-publisher";
/// The annotation the real publisher sets, word for word.
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// Sets up the live namespace `ns`.
pub fn reconcile(tx: &mut Tx, ctx: &Ctx, ns: &str) -> ApiResult<Outcome> {
    service_account(tx, ns)?;
    root_ca(tx, ctx, ns)?;
    Ok(Outcome::done())
}

fn service_account(tx: &mut Tx, ns: &str) -> ApiResult<()> {
    let res = resource(tx, "", "serviceaccounts")?;
    if tx.get(&ops::key(&res, ns, ACCOUNT)).is_some() {
        return Ok(());
    }
    let account =
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": ACCOUNT}});
    let how = WriteKind::Controller {
        manager: ACCOUNTS_MANAGER,
        part: Part::Main,
    };
    ops::create(tx, &res, ns, account, how)?;
    Ok(())
}

fn root_ca(tx: &mut Tx, ctx: &Ctx, ns: &str) -> ApiResult<()> {
    let res = resource(tx, "", "configmaps")?;
    let key = ops::key(&res, ns, ROOT_CA);
    let data = json!({"ca.crt": ctx.root_ca()});
    let Some(old) = tx.get(&key) else {
        let map = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": ROOT_CA, "annotations": {"kubernetes.io/description": DESCRIPTION}},
            "data": data,
        });
        let how = WriteKind::Controller {
            manager: CA_MANAGER,
            part: Part::Main,
        };
        ops::create(tx, &res, ns, map, how)?;
        return Ok(());
    };
    let described = old["metadata"]["annotations"]["kubernetes.io/description"]
        .as_str()
        .is_some_and(|d| !d.is_empty());
    if old["data"] == data && described {
        return Ok(());
    }
    let mut new = (*old).clone();
    new["data"] = data;
    if !described {
        new["metadata"]["annotations"]["kubernetes.io/description"] = json!(DESCRIPTION);
    }
    write_main(tx, &res, &key, &old, new, CA_MANAGER)?;
    Ok(())
}

/// Whether `key` is one of the objects this controller keeps.
pub fn kept(key: &ObjKey) -> bool {
    !key.ns.is_empty()
        && (key.res == "/configmaps" && key.name == ROOT_CA
            || key.res == "/serviceaccounts" && key.name == ACCOUNT)
}

/// The namespace an object lives in, as a key to reconcile.
pub fn namespace_of(key: &ObjKey) -> ObjKey {
    ObjKey::new(ops::NAMESPACES, "", key.ns.as_str())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use serde_json::{Value, json};

    use super::ROOT_CA;
    use crate::error::ApiResult;
    use crate::ops::{self, DeleteOptions, Part, WriteKind};
    use crate::registry::Resource;
    use crate::server::Sandbox;
    use crate::store::{ObjKey, Store, Tx};

    /// Waits for `check`, a second at most: the setup is meant to be there by then.
    async fn within_a_second(store: &Store, what: &str, check: impl Fn(&Store) -> bool) {
        let start = Instant::now();
        while !check(store) {
            assert!(
                start.elapsed() < Duration::from_secs(1),
                "no {what} after a second"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn get(store: &Store, res: &str, ns: &str, name: &str) -> Option<Value> {
        store.get(&ObjKey::new(res, ns, name)).map(|o| (*o).clone())
    }

    fn set_up(store: &Store, ns: &str) -> bool {
        get(store, "/serviceaccounts", ns, "default").is_some()
            && get(store, "/configmaps", ns, ROOT_CA).is_some_and(|cm| {
                cm["data"]["ca.crt"]
                    .as_str()
                    .is_some_and(|c| c.contains("BEGIN CERTIFICATE"))
            })
    }

    /// One write with the core resource `plural` at hand.
    async fn write(
        store: &Store,
        plural: &'static str,
        f: impl FnOnce(&Resource, &mut Tx) -> ApiResult<()> + Send + 'static,
    ) {
        store
            .write(move |tx| {
                let res = tx
                    .state()
                    .registry
                    .find("", "v1", plural)
                    .expect("resource");
                f(&res, tx)
            })
            .await
            .expect("write");
    }

    #[tokio::test]
    async fn every_namespace_gets_its_account_and_root_ca_back() {
        let store = Sandbox::in_memory().await.expect("sandbox").store;
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            within_a_second(&store, &format!("setup of {ns}"), |s| set_up(s, ns)).await;
        }
        let ca = get(&store, "/configmaps", "default", ROOT_CA).expect("ca");
        assert!(ca["metadata"]["annotations"]["kubernetes.io/description"].is_string());

        write(&store, "namespaces", |res, tx| {
            let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}});
            let how = WriteKind::Update {
                manager: "test",
                part: Part::Main,
            };
            ops::create(tx, res, "", ns, how).map(drop)
        })
        .await;
        within_a_second(&store, "setup of a new namespace", |s| set_up(s, "team")).await;
        let same_pem = |s: &Store| {
            get(s, "/configmaps", "team", ROOT_CA).map(|c| c["data"].clone())
                == Some(ca["data"].clone())
        };
        assert!(same_pem(&store), "one CA for the cluster");

        write(&store, "configmaps", |res, tx| {
            ops::delete(tx, res, "team", ROOT_CA, &DeleteOptions::default()).map(drop)
        })
        .await;
        write(&store, "serviceaccounts", |res, tx| {
            ops::delete(tx, res, "team", "default", &DeleteOptions::default()).map(drop)
        })
        .await;
        within_a_second(&store, "setup after deletion", |s| set_up(s, "team")).await;

        write(&store, "configmaps", |res, tx| {
            let key = ops::key(res, "team", ROOT_CA);
            let old = tx.get(&key).expect("ca");
            let mut new = (*old).clone();
            new["data"] = json!({"ca.crt": "tampered"});
            let how = WriteKind::Update {
                manager: "test",
                part: Part::Main,
            };
            ops::finish_write(tx, res, key, old, new, how).map(drop)
        })
        .await;
        within_a_second(&store, "the CA put back", same_pem).await;
    }
}
