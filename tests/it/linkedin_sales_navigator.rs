//! LinkedIn Sales Navigator list exports through the file import: the built-in header map
//! (`linkedin_sales_navigator.leads` / `.accounts`) lands tools' differing labels as the same
//! columns, keyed by the LinkedIn URL, and a merged re-import upserts.

use revlake::lake::{Lake, WorkspaceId};
use revlake::sources::file::import_file;

use crate::common::query;

async fn local_lake(dir: &std::path::Path) -> Lake {
    Lake::open(&dir.join("lake").display().to_string())
        .await
        .unwrap()
}

fn acme() -> WorkspaceId {
    WorkspaceId::new("acme").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sales_navigator_lead_list_lands_mapped_columns_and_reimports_upsert() {
    let dir = tempfile::tempdir().unwrap();
    let lake = local_lake(dir.path()).await;
    let export = dir.path().join("Sales Navigator - Q1 targets.csv");
    std::fs::write(
        &export,
        "First Name,Last Name,Job Title,Company Name,Email Address,Geography,Industry,Company Headcount,\
         LinkedIn Profile URL,Sales Navigator URL,Connection Degree,Date Added,Custom Tag\n\
         Ann,Lee,VP Sales,Acme,ann@acme.com,\"Berlin, Germany\",Software,201-500,\
         https://www.linkedin.com/in/annlee,https://www.linkedin.com/sales/lead/ACwAA1,2nd,2025-01-02,hot\n\
         Bob,Ray,CFO,Globex,,\"Austin, Texas\",Manufacturing,1001-5000,\
         https://www.linkedin.com/in/bobray,https://www.linkedin.com/sales/lead/ACwAA2,3rd,2025-01-03,\n",
    )
    .unwrap();
    let outcome = import_file(&lake, export.display().to_string(), acme())
        .with_object("linkedin_sales_navigator.leads".to_string())
        .await
        .unwrap();
    assert_eq!(outcome.dataset, "raw.linkedin_sales_navigator_leads");
    assert_eq!(outcome.rows, 2);
    let got = query(
        &lake,
        "SELECT first_name, last_name, title, company, email, location, company_size, profile_url, \
         connection_degree, date_added, custom_tag FROM raw.linkedin_sales_navigator_leads ORDER BY last_name",
    )
    .await;
    assert_eq!(
        got,
        [
            "Ann,Lee,VP Sales,Acme,ann@acme.com,Berlin, Germany,201-500,https://www.linkedin.com/in/annlee,2nd,2025-01-02,hot",
            "Bob,Ray,CFO,Globex,,Austin, Texas,1001-5000,https://www.linkedin.com/in/bobray,3rd,2025-01-03,",
        ]
    );

    // Another tool's export of the same list: other labels, one lead changed; merged on the
    // map's key (the profile URL), it upserts.
    let again = dir.path().join("leads-export.csv");
    std::fs::write(
        &again,
        "Name,Title,Company,Email,Location,Profile URL,Saved Date\n\
         Ann Lee,CRO,Acme,ann@acme.com,\"Berlin, Germany\",https://www.linkedin.com/in/annlee,2025-02-01\n",
    )
    .unwrap();
    let outcome = import_file(&lake, again.display().to_string(), acme())
        .with_object("linkedin_sales_navigator.leads".to_string())
        .with_strategy(revlake::sources::file::ImportStrategy::Merge)
        .await
        .unwrap();
    assert_eq!(outcome.rows, 1);
    let got = query(
        &lake,
        "SELECT profile_url, title, full_name FROM raw.linkedin_sales_navigator_leads ORDER BY profile_url",
    )
    .await;
    assert_eq!(
        got,
        [
            "https://www.linkedin.com/in/annlee,CRO,Ann Lee",
            "https://www.linkedin.com/in/bobray,CFO,",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sales_navigator_account_list_lands_domains_and_headcounts() {
    let dir = tempfile::tempdir().unwrap();
    let lake = local_lake(dir.path()).await;
    let export = dir.path().join("accounts.csv");
    std::fs::write(
        &export,
        "Account Name,Website,Industry,Employee Count,Headquarters,Company LinkedIn URL\n\
         Acme,https://acme.com,Software,350,Berlin,https://www.linkedin.com/company/acme\n",
    )
    .unwrap();
    let outcome = import_file(&lake, export.display().to_string(), acme())
        .with_object("linkedin_sales_navigator.accounts".to_string())
        .await
        .unwrap();
    assert_eq!(outcome.dataset, "raw.linkedin_sales_navigator_accounts");
    let got = query(
        &lake,
        "SELECT name, website, employee_count, headquarters, linkedin_url FROM raw.linkedin_sales_navigator_accounts",
    )
    .await;
    assert_eq!(
        got,
        ["Acme,https://acme.com,350,Berlin,https://www.linkedin.com/company/acme"]
    );
}
