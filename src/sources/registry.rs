//! The connectors revlake ships, by vendor name.

use super::source::{Connection, Source};
use super::{Result, SourceError, hubspot, pipedrive};

/// What `revlake sources` shows of a vendor.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct VendorInfo {
    pub name: &'static str,
    pub description: &'static str,
    /// Credential names a connection maps to environment variables; alternatives separated
    /// by ` | ` (e.g. a private-app token or an OAuth client).
    pub credentials: &'static str,
    /// Streams a connection may name.
    pub streams: &'static [&'static str],
    /// Streams synced when a connection names none.
    pub default_streams: &'static [&'static str],
    /// The public API root a `base_url` replaces.
    pub default_base_url: &'static str,
}

/// Every shipped vendor.
pub fn vendors() -> Vec<VendorInfo> {
    vec![
        pipedrive::INFO,
        super::salesforce::INFO,
        hubspot::INFO,
        super::singer::SINGER,
        super::singer::AIRBYTE,
        super::stripe::INFO,
        super::zendesk::INFO,
        super::gong::INFO,
        super::outreach::INFO,
        super::salesloft::INFO,
        super::intercom::INFO,
        super::chargebee::INFO,
        super::kit::INFO,
        super::slack::INFO,
        super::gmail::INFO,
        super::google_drive::INFO,
        super::fireflies::INFO,
        super::monday::INFO,
    ]
}

/// The vendor named `name`.
pub fn vendor(name: &str) -> Result<VendorInfo> {
    vendors()
        .into_iter()
        .find(|v| v.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| SourceError::Config {
            connection: String::new(),
            reason: format!(
                "unknown source {name:?}; revlake has: {}",
                vendors()
                    .iter()
                    .map(|v| v.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
}

/// Opens the connector of `connection` (reads its credentials; no request is made yet).
pub fn open(connection: &Connection) -> Result<Box<dyn Source>> {
    match vendor(&connection.source)?.name {
        "pipedrive" => Ok(Box::new(pipedrive::Pipedrive::open(connection)?)),
        "hubspot" => Ok(Box::new(hubspot::Hubspot::open(connection)?)),
        "salesforce" => Ok(Box::new(super::salesforce::Salesforce::open(connection)?)),
        "singer" => Ok(Box::new(super::singer::Tap::singer(connection)?)),
        "airbyte" => Ok(Box::new(super::singer::Tap::airbyte(connection)?)),
        "stripe" => Ok(Box::new(super::stripe::Stripe::open(connection)?)),
        "zendesk" => Ok(Box::new(super::zendesk::Zendesk::open(connection)?)),
        "gong" => Ok(Box::new(super::gong::Gong::open(connection)?)),
        "outreach" => Ok(Box::new(super::outreach::Outreach::open(connection)?)),
        "salesloft" => Ok(Box::new(super::salesloft::Salesloft::open(connection)?)),
        "intercom" => Ok(Box::new(super::intercom::Intercom::open(connection)?)),
        "chargebee" => Ok(Box::new(super::chargebee::Chargebee::open(connection)?)),
        "kit" => Ok(Box::new(super::kit::Kit::open(connection)?)),
        "slack" => Ok(Box::new(super::slack::Slack::open(connection)?)),
        "gmail" => Ok(Box::new(super::gmail::Gmail::open(connection)?)),
        "google_drive" => Ok(Box::new(super::google_drive::GoogleDrive::open(
            connection,
        )?)),
        "fireflies" => Ok(Box::new(super::fireflies::Fireflies::open(connection)?)),
        "monday" => Ok(Box::new(super::monday::Monday::open(connection)?)),
        other => Err(SourceError::Config {
            connection: connection.name.clone(),
            reason: format!("no connector is registered for {other}"),
        }),
    }
}
