//! The one Ctrl-C / SIGTERM handler of `kb-usage`: imports stop sending on the first signal and
//! quit on the second; `serve` stops on the first.

use super::EXIT_INTERRUPTED;

/// Ctrl-C (and SIGTERM) as a stream, registered when created.
pub(super) struct Interrupts {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Interrupts {
    /// Registers the handlers now: a signal that comes before the first [`next`](Self::next)
    /// is not missed.
    pub(super) fn register() -> Interrupts {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let signals = signal(SignalKind::interrupt())
                .and_then(|interrupt| Ok((interrupt, signal(SignalKind::terminate())?)))
                .ok();
            Interrupts { signals }
        }
        #[cfg(not(unix))]
        {
            Interrupts {}
        }
    }

    /// Completes on the next Ctrl-C or SIGTERM.
    pub(super) async fn next(&mut self) {
        #[cfg(unix)]
        if let Some((interrupt, terminate)) = &mut self.signals {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Watches for Ctrl-C and SIGTERM (registered before this returns): the first runs `first`
/// (stop sending, say so), the second quits at once with [`EXIT_INTERRUPTED`].
pub(super) fn on_interrupt(first: impl FnOnce() + Send + 'static) -> tokio::task::JoinHandle<()> {
    let mut signals = Interrupts::register();
    tokio::spawn(async move {
        signals.next().await;
        first();
        signals.next().await;
        std::process::exit(i32::from(EXIT_INTERRUPTED));
    })
}
