//! The level filter in force, swapped whole by [`super::set_level`].
//!
//! Not tracing-subscriber's `reload` layer: that one takes a read lock on every event
//! and on every span's creation, entry, exit and close, to forward calls its target
//! filter ignores; with spans around each request's steps that is a shared lock word
//! bouncing between the workers' cores several times per request. This layer is
//! consulted only when a callsite registers (and when [`super::set_level`] makes every callsite
//! register again): each callsite then caches `always` or `never`, as under the static
//! filter before, so a request pays nothing for the level being changeable.

use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwapOption;
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, Layer};

/// The access log's target: on at `info` whatever the level, unless named.
const ACCESS: &str = super::ACCESS_TARGET;

/// The filter in force; `None` until [`install`].
static CURRENT: ArcSwapOption<Targets> = ArcSwapOption::const_empty();
/// What the process started with (`RUST_LOG`, else `info`): what an empty level
/// restores.
static START: OnceLock<Targets> = OnceLock::new();

/// Installs `start` as the level and returns the layer that applies it.
pub fn install(start: Targets) -> LiveLevel {
    let _ = START.set(start.clone());
    CURRENT.store(Some(Arc::new(with_access(start))));
    LiveLevel
}

/// Makes `targets` (`None`: the start-up level) the level, if a layer was installed,
/// and has every callsite ask again.
pub fn set(targets: Option<Targets>) {
    if CURRENT.load().is_none() {
        return;
    }
    let Some(targets) = targets.or_else(|| START.get().cloned()) else {
        return;
    };
    CURRENT.store(Some(Arc::new(with_access(targets))));
    tracing::callsite::rebuild_interest_cache();
}

fn with_access(targets: Targets) -> Targets {
    match targets.iter().any(|(target, _)| target == ACCESS) {
        true => targets,
        false => targets.with_target(ACCESS, Level::INFO),
    }
}

/// The `Targets` of [`CURRENT`] as a layer: it answers callsite registration and
/// `enabled` (asked only of callsites registered as `sometimes`, which it never says)
/// and leaves every other hook the default no-op.
pub struct LiveLevel;

impl<S: Subscriber> Layer<S> for LiveLevel {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        match CURRENT.load().as_deref() {
            Some(t) if t.would_enable(metadata.target(), metadata.level()) => Interest::always(),
            _ => Interest::never(),
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        CURRENT
            .load()
            .as_deref()
            .is_some_and(|t| t.would_enable(metadata.target(), metadata.level()))
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        CURRENT
            .load()
            .as_deref()
            .map(|t| <Targets as Layer<S>>::max_level_hint(t).unwrap_or(LevelFilter::TRACE))
    }
}
