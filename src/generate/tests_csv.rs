//! Tests that re-read the generated CSVs: stage history, foreign keys, HubSpot stage dates,
//! file counts against the truth, domain overlap and activities.

use std::collections::{HashMap, HashSet};

use super::tests::{DEALS, Table, config, hs, run, sf};
use super::*;

#[test]
fn stage_history_matches_the_opportunity() {
    let (dir, summary) = run(&config(42));
    let truth = &summary.truth;
    let opps = sf(dir.path(), "Opportunity");
    let history = sf(dir.path(), "OpportunityHistory");
    assert_eq!(
        history.rows.len() as u64,
        truth.salesforce.deals + truth.salesforce.stage_transitions
    );

    let (h_opp, h_stage, h_at) = (
        history.col("OpportunityId"),
        history.col("StageName"),
        history.col("CreatedDate"),
    );
    let mut last: HashMap<&str, (&str, &str)> = HashMap::new();
    let mut first: HashMap<&str, &str> = HashMap::new();
    for r in &history.rows {
        let opp = r.get(h_opp).unwrap_or("");
        if let Some((_, prev_at)) = last.get(opp) {
            assert!(
                *prev_at <= r.get(h_at).unwrap_or(""),
                "history out of order for {opp}"
            );
        }
        first.entry(opp).or_insert(r.get(h_stage).unwrap_or(""));
        last.insert(
            opp,
            (r.get(h_stage).unwrap_or(""), r.get(h_at).unwrap_or("")),
        );
    }
    let labels: HashMap<&str, u8> = model::STAGES
        .iter()
        .map(|s| (s.sf_label, s.sf_probability))
        .collect();
    let c = |n| opps.col(n);
    let (mut won, mut lost, mut open) = (0, 0, 0);
    for r in &opps.rows {
        let stage = &r[c("StageName")];
        let (last_stage, _) = last
            .get(&r[c("Id")])
            .copied()
            .expect("opportunity has history");
        assert_eq!(last_stage, stage);
        assert_eq!(first.get(&r[c("Id")]).copied(), Some("Prospecting"));
        assert_eq!(
            labels.get(stage).map(u8::to_string).as_deref(),
            Some(&r[c("Probability")])
        );
        let is_closed = stage.starts_with("Closed");
        assert_eq!(&r[c("IsClosed")], if is_closed { "true" } else { "false" });
        assert_eq!(
            &r[c("IsWon")],
            if stage == "Closed Won" {
                "true"
            } else {
                "false"
            }
        );
        assert_eq!(r[c("CloseDate")].len(), 10, "CloseDate present");
        let close = &r[c("CloseDate")];
        if is_closed {
            assert!(close <= "2025-12-31" && close >= &r[c("CreatedDate")][..10]);
        } else {
            assert!(
                close > "2025-12-31",
                "open deal expected close {close} after as_of"
            );
        }
        assert!(
            &r[c("CreatedDate")][..10] >= "2023-01-01"
                && &r[c("CreatedDate")][..10] <= "2025-12-31"
        );
        match stage {
            "Closed Won" => won += 1,
            "Closed Lost" => lost += 1,
            _ => open += 1,
        }
    }
    assert_eq!(
        (won, lost, open),
        (
            truth.salesforce.won,
            truth.salesforce.lost,
            truth.salesforce.open
        )
    );
    assert!(open > 0 && won > 0 && lost > 0);
}

#[test]
fn foreign_keys_resolve() {
    let (dir, _) = run(&config(3));
    let d = dir.path();
    let (accounts, contacts, users, opps) = (
        sf(d, "Account"),
        sf(d, "Contact"),
        sf(d, "User"),
        sf(d, "Opportunity"),
    );
    let (roles, tasks, events) = (
        sf(d, "OpportunityContactRole"),
        sf(d, "Task"),
        sf(d, "Event"),
    );
    let history = sf(d, "OpportunityHistory");
    let account_ids = accounts.set("Id");
    let contact_ids = contacts.set("Id");
    let user_ids = users.set("Id");
    let opp_ids = opps.set("Id");
    let check = |table: &Table, column: &str, ids: &HashSet<&str>, allow_empty: bool| {
        for v in table.values(column) {
            assert!(
                ids.contains(v) || (allow_empty && v.is_empty()),
                "{column} {v:?} does not resolve"
            );
        }
    };
    check(&opps, "AccountId", &account_ids, false);
    check(&opps, "OwnerId", &user_ids, false);
    check(&contacts, "AccountId", &account_ids, false);
    check(&contacts, "OwnerId", &user_ids, false);
    check(&accounts, "OwnerId", &user_ids, false);
    check(&users, "ManagerId", &user_ids, true);
    check(&roles, "OpportunityId", &opp_ids, false);
    check(&roles, "ContactId", &contact_ids, false);
    check(&history, "OpportunityId", &opp_ids, false);
    check(&history, "CreatedById", &user_ids, false);
    for t in [&tasks, &events] {
        check(t, "WhatId", &opp_ids, false);
        check(t, "WhoId", &contact_ids, false);
        check(t, "OwnerId", &user_ids, false);
    }
    // Ids: unique, 18 characters, right key prefix.
    for (table, prefix) in [
        (&accounts, "001"),
        (&contacts, "003"),
        (&users, "005"),
        (&opps, "006"),
        (&history, "008"),
        (&roles, "00K"),
        (&tasks, "00T"),
        (&events, "00U"),
    ] {
        let ids = table.values("Id");
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
        assert!(
            ids.iter()
                .all(|id| id.len() == 18 && id.starts_with(prefix))
        );
    }
    // A contact role's contact belongs to the opportunity's account; one primary per deal.
    let contact_account: HashMap<&str, &str> = contacts
        .values("Id")
        .into_iter()
        .zip(contacts.values("AccountId"))
        .collect();
    let opp_account: HashMap<&str, &str> = opps
        .values("Id")
        .into_iter()
        .zip(opps.values("AccountId"))
        .collect();
    let mut primaries: HashMap<&str, u32> = HashMap::new();
    for ((opp, contact), primary) in roles
        .values("OpportunityId")
        .into_iter()
        .zip(roles.values("ContactId"))
        .zip(roles.values("IsPrimary"))
    {
        assert_eq!(contact_account.get(contact), opp_account.get(opp));
        *primaries.entry(opp).or_default() += u32::from(primary == "true");
    }
    assert_eq!(primaries.len(), opps.rows.len());
    assert!(primaries.values().all(|&n| n == 1));

    // Timestamps: a deal after its account, a role after its contact and deal, activities
    // logged after the deal was created (ISO strings compare in time order).
    let created = |t: &Table| -> HashMap<String, String> {
        t.values("Id")
            .into_iter()
            .map(str::to_string)
            .zip(t.values("CreatedDate").into_iter().map(str::to_string))
            .collect()
    };
    let (account_at, contact_at, opp_at) = (created(&accounts), created(&contacts), created(&opps));
    for (account, at) in opps
        .values("AccountId")
        .into_iter()
        .zip(opps.values("CreatedDate"))
    {
        assert!(account_at[account].as_str() <= at);
    }
    for ((opp, contact), at) in roles
        .values("OpportunityId")
        .into_iter()
        .zip(roles.values("ContactId"))
        .zip(roles.values("CreatedDate"))
    {
        assert!(
            contact_at[contact].as_str() <= at && opp_at[opp].as_str() <= at,
            "role at {at}"
        );
    }
    for t in [&tasks, &events] {
        for (opp, at) in t.values("WhatId").into_iter().zip(t.values("CreatedDate")) {
            assert!(
                opp_at[opp].as_str() <= at,
                "activity at {at} before its deal"
            );
        }
    }

    // HubSpot associations.
    let (companies, hs_contacts, deals) = (hs(d, "companies"), hs(d, "contacts"), hs(d, "deals"));
    let company_ids = companies.set("Record ID");
    let hs_contact_ids = hs_contacts.set("Record ID");
    check(&hs_contacts, "Associated Company ID", &company_ids, false);
    check(&deals, "Associated Company IDs", &company_ids, false);
    for v in deals.values("Associated Contact IDs") {
        assert!(
            v.split(';').all(|id| hs_contact_ids.contains(id)),
            "contact ids {v}"
        );
    }
    assert!(
        company_ids
            .iter()
            .all(|id| id.len() >= 10 && id.bytes().all(|b| b.is_ascii_digit()))
    );
}

#[test]
fn hubspot_stage_dates_are_consistent() {
    let (dir, summary) = run(&GenerateConfig {
        hubspot_share: 0.5,
        ..config(11)
    });
    let deals = hs(dir.path(), "deals");
    assert_eq!(deals.rows.len() as u64, summary.truth.hubspot.deals);
    let label = deals.col("Deal Stage");
    let (mut won, mut open) = (0, 0);
    for r in &deals.rows {
        let stage = &r[label];
        let entered = deals.col(&format!("Date entered \"{stage} (Sales Pipeline)\""));
        let exited = deals.col(&format!("Date exited \"{stage} (Sales Pipeline)\""));
        assert!(!r[entered].is_empty(), "current stage has an entry date");
        assert!(r[exited].is_empty(), "current stage has no exit date");
        assert_eq!(
            &r[deals.col("Is Closed Won")],
            if stage == "Closed Won" {
                "true"
            } else {
                "false"
            }
        );
        let closed = stage.starts_with("Closed");
        assert_eq!(
            &r[deals.col("Is Deal Closed")],
            if closed { "true" } else { "false" }
        );
        won += u64::from(stage == "Closed Won");
        open += u64::from(!closed);
        for (_, l) in model::HS_STAGES {
            let e = &r[deals.col(&format!("Date entered \"{l} (Sales Pipeline)\""))];
            let x = &r[deals.col(&format!("Date exited \"{l} (Sales Pipeline)\""))];
            assert!(
                x.is_empty() || (!e.is_empty() && e <= x),
                "{l}: entered {e} exited {x}"
            );
        }
    }
    assert_eq!(
        (won, open),
        (summary.truth.hubspot.won, summary.truth.hubspot.open)
    );
}

#[test]
fn truth_counts_match_files_and_domains_overlap() {
    let (dir, summary) = run(&config(5));
    let truth = &summary.truth;
    for file in &summary.files {
        let table = Table::read(&file.path);
        assert_eq!(
            table.rows.len() as u64,
            file.rows,
            "{}",
            file.path.display()
        );
        let rel = file
            .path
            .strip_prefix(dir.path())
            .expect("under out")
            .to_string_lossy()
            .replace('\\', "/");
        assert_eq!(truth.files.get(&rel), Some(&file.rows));
    }
    let json = std::fs::read_to_string(dir.path().join("truth.json")).expect("truth.json");
    let back: Truth = serde_json::from_str(&json).expect("parse truth");
    assert_eq!(back.files, truth.files);
    assert_eq!(back.salesforce, truth.salesforce);
    assert_eq!(truth.salesforce.deals + truth.hubspot.deals, DEALS);
    assert_eq!(truth.hubspot.deals, 1_000);
    for s in [&truth.salesforce, &truth.hubspot] {
        assert_eq!(s.won + s.lost + s.open, s.deals);
    }
    assert_eq!(truth.salesforce.accounts, 1_000);
    assert_eq!(truth.salesforce.users + truth.hubspot.users, 100);

    // About 30% of HubSpot companies share a domain with a Salesforce account.
    let hs_domains = hs(dir.path(), "companies")
        .values("Company Domain Name")
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
    let share = truth.shared_domains as f64 / hs_domains.len() as f64;
    assert!((0.2..0.4).contains(&share), "shared share {share}");
    let sf_accounts = sf(dir.path(), "Account");
    let sf_domains: HashSet<String> = sf_accounts
        .values("Website")
        .into_iter()
        .map(|w| {
            w.trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_start_matches("www.")
                .to_string()
        })
        .collect();
    let found = hs_domains
        .iter()
        .filter(|d| sf_domains.contains(*d))
        .count() as u64;
    assert!(found <= truth.shared_domains && found as f64 >= 0.85 * truth.shared_domains as f64);
    // Salesforce domains are unique.
    let websites: Vec<_> = sf_accounts
        .values("Website")
        .into_iter()
        .filter(|w| !w.is_empty())
        .collect();
    let distinct: HashSet<_> = websites
        .iter()
        .map(|w| {
            w.trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_start_matches("www.")
        })
        .collect();
    assert_eq!(distinct.len(), websites.len());
}

#[test]
fn activities_per_deal_are_in_range_and_follow_context() {
    let (dir, summary) = run(&config(42));
    let tasks = sf(dir.path(), "Task");
    let events = sf(dir.path(), "Event");
    let per_deal =
        (tasks.rows.len() + events.rows.len()) as f64 / summary.truth.salesforce.deals as f64;
    assert!(
        (4.0..=10.0).contains(&per_deal),
        "activities per deal {per_deal}"
    );
    let roles = sf(dir.path(), "OpportunityContactRole");
    let champion_deals: HashSet<&str> = roles
        .rows
        .iter()
        .filter(|r| &r[roles.col("Role")] == "Champion")
        .map(|r| r.get(roles.col("OpportunityId")).unwrap_or(""))
        .collect();
    let mut count: HashMap<&str, u64> = HashMap::new();
    for t in [&tasks, &events] {
        for what in t.values("WhatId") {
            *count.entry(what).or_default() += 1;
        }
    }
    let opps = sf(dir.path(), "Opportunity");
    let (mut with, mut without) = ((0u64, 0u64), (0u64, 0u64));
    for id in opps.values("Id") {
        let n = count.get(id).copied().unwrap_or(0);
        let b = if champion_deals.contains(id) {
            &mut with
        } else {
            &mut without
        };
        b.0 += n;
        b.1 += 1;
    }
    assert!(with.0 as f64 / with.1 as f64 > without.0 as f64 / without.1 as f64);
    assert!(
        tasks
            .values("Type")
            .iter()
            .all(|t| *t == "Call" || *t == "Email")
    );
    assert!(
        events
            .values("Type")
            .iter()
            .all(|t| *t == "Meeting" || *t == "Demo")
    );
}
