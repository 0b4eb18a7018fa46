//! Several instances on one database (spec/operations.md "Scale"): a dossier issued by one is
//! tarified on the other, ceilings hold across both, and TLS sessions resume across them with the
//! shared ticket key file.

use std::sync::Arc;

use visiodroits::config::Config;
use visiodroits::soap::SoapVersion;
use visiodroits::startup::Server;
use visiodroits_client::{SoapConnection, Versions};

use crate::helpers::{code, first, new_id, services_request, shared, tls_for};
use crate::rights::Rights;
use crate::tarification::{prescription, tarification, LINES};

async fn two_instances() -> (Server, Server) {
    let s = shared();
    let db = s.fresh_database().await;
    let keys = s.base.join(format!("tickets-{}", new_id()));
    std::fs::write(
        &keys,
        format!(
            "{}\n",
            visiodroits::tls::tickets::SharedTicketer::new_key_line()
        ),
    )
    .unwrap();
    let mut servers = Vec::new();
    for (id, code) in [("vd-a", "A"), ("vd-b", "B")] {
        let mut vars = s.config_vars(&db);
        vars.insert("VD_INSTANCE_ID".into(), id.into());
        vars.insert("VD_INSTANCE_CODE".into(), code.into());
        vars.insert("VD_TICKET_KEY_FILE".into(), keys.display().to_string());
        servers.push(
            Server::start(Config::from_map(&vars).unwrap())
                .await
                .unwrap(),
        );
    }
    let b = servers.pop().unwrap();
    let a = servers.pop().unwrap();
    (a, b)
}

async fn connect(server: &Server, config: Arc<rustls::ClientConfig>) -> SoapConnection {
    SoapConnection::connect(server.addr, "localhost", config)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_dossier_of_one_instance_is_tarified_on_the_other_and_ceilings_hold_across_both() {
    let (a, b) = two_instances().await;
    let config = tls_for(Some("valid"), Versions::Both);
    let mut on_a = connect(&a, config.clone()).await;
    let req = Rights {
        nir: "1790312345678".into(),
        key: "04".into(),
        birth: "19790301".into(),
        ..Rights::default()
    };
    let mut dossiers = Vec::new();
    for _ in 0..2 {
        let reply = on_a
            .soap(SoapVersion::V12, req.xml(SoapVersion::V12, &new_id()))
            .await
            .unwrap();
        assert_eq!(code(&reply), "0000");
        dossiers.push(first(&reply.body, "numero_dossier").unwrap());
    }
    let mut on_b = connect(&b, config.clone()).await;
    let reply = on_b
        .soap(
            SoapVersion::V12,
            tarification(
                &new_id(),
                &dossiers[0],
                "DEVIS",
                &prescription(1, LINES, ""),
            ),
        )
        .await
        .unwrap();
    assert_eq!(code(&reply), "0000", "{}", reply.body);
    assert_eq!(first(&reply.body, "total_amc").as_deref(), Some("101.30"));

    // 24 concurrent PECs of a 90.00 LPP line (ceiling 100.00), half on each instance.
    let mut tasks = Vec::new();
    for i in 0..6u32 {
        for (server, n) in [(&a, 0u32), (&b, 1u32)] {
            let mut conn = connect(server, config.clone()).await;
            let d = dossiers[(i % 2) as usize].clone();
            tasks.push(tokio::spawn(async move {
                let mut total = 0;
                let mut accreditations = Vec::new();
                for k in 0..2u32 {
                    let p = 100 + i * 10 + n * 5 + k;
                    let body =
                        tarification(&new_id(), &d, "PEC", &prescription(p, &LINES[4..], ""));
                    let reply = conn.soap(SoapVersion::V12, body).await.unwrap();
                    assert_eq!(code(&reply), "0000", "{}", reply.body);
                    total += visiodroits::domain::Hundredths::parse(
                        &first(&reply.body, "total_amc").unwrap(),
                        i64::MAX,
                    )
                    .unwrap()
                    .get();
                    accreditations.push(first(&reply.body, "numero_accreditation").unwrap());
                }
                (total, accreditations)
            }));
        }
    }
    let mut total = 0;
    let mut instances = std::collections::BTreeSet::new();
    for t in tasks {
        let (amount, accs) = t.await.unwrap();
        total += amount;
        for acc in accs {
            instances.insert(acc.chars().last().unwrap());
        }
    }
    assert_eq!(
        total, 10_000,
        "together the PECs of both instances got exactly the ceiling"
    );
    assert_eq!(
        instances,
        ['A', 'B'].into_iter().collect(),
        "each instance names itself in its accreditations"
    );
}

#[tokio::test]
async fn a_session_opened_on_one_instance_resumes_on_the_other() {
    let (a, b) = two_instances().await;
    for versions in [Versions::Tls13, Versions::Tls12] {
        let config = tls_for(Some("valid"), versions);
        let mut first_conn = connect(&a, config.clone()).await;
        let reply = first_conn
            .soap(
                SoapVersion::V12,
                services_request(SoapVersion::V12, &new_id(), None),
            )
            .await
            .unwrap();
        assert_eq!(code(&reply), "0000");
        let mut on_b = connect(&b, config).await;
        assert!(on_b.resumed, "{versions:?}: resumed on the other instance");
        let reply = on_b
            .soap(
                SoapVersion::V12,
                services_request(SoapVersion::V12, &new_id(), None),
            )
            .await
            .unwrap();
        assert_eq!(code(&reply), "0000");
    }
}
