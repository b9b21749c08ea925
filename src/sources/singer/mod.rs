//! Singer taps and Airbyte sources as revlake sources: the tap runs as a subprocess, its
//! stdout messages become pages of each stream it emits (landed in
//! `raw.<connection>_<stream>`, typed from its JSON schemas, merged on its key properties or
//! appended when it has none), and its state documents become the connection's checkpoints,
//! stored in `ops.sync_state` and handed back with `--state` on the next run
//! (see [`crate::sources::stateful`]).
//!
//! ```text
//! [connections.csv]
//! source = "singer"                       # or "airbyte"
//! credentials = { api_key = "TAP_API_KEY" }   # merged into the tap's config file
//! [connections.csv.options]
//! command = ["tap-jsonl"]                  # the tap's argv
//! config = { path = "exports/deals.jsonl" }   # or a JSON file path
//! catalog = "catalog.json"                 # optional (`properties` for older Singer taps)
//! ```

pub mod config;
mod message;
mod process;
mod schema;
mod tap;

pub use config::{Protocol, TapConfig};
pub use tap::Tap;

use super::registry::VendorInfo;

pub const SINGER: VendorInfo = VendorInfo {
    name: "singer",
    description: "any Singer tap, run as a subprocess (options.command, options.config); streams are the tap's, state handed back with --state",
    credentials: "any: each one is written into the tap's config file",
    streams: &[],
    default_streams: &[],
    default_base_url: "",
};

pub const AIRBYTE: VendorInfo = VendorInfo {
    name: "airbyte",
    description: "any Airbyte source (protocol v0), run as a subprocess: `read` with a configured catalog (discovered when none is given)",
    credentials: "any: each one is written into the source's config file",
    streams: &[],
    default_streams: &[],
    default_base_url: "",
};
