//! After a `101 Switching Protocols`: the bytes of the two connections, copied both ways.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// Once hyper has handed over both sides of an upgraded connection (the client's, after
/// the 101 is written to it, and the app's), copies bytes between them until both are done.
///
/// Runs as a task of its own because the 101 must be returned to hyper before the client's
/// side can be taken over. `alive` keeps shutdown waiting (boundedly) for the bridge.
pub fn bridge(client: OnUpgrade, upstream: OnUpgrade, alive: crate::Alive, log_errors: bool) {
    tokio::spawn(async move {
        let _alive = alive;
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(err) => {
                if log_errors {
                    eprintln!("kip-instance-id: an upgrade was not completed: {err}");
                }
                return;
            }
        };
        let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
        // An error here is one side going away, which ends the bridge as a close would;
        // neither side is owed a message about it.
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    });
}
