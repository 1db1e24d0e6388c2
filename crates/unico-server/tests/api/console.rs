//! The web console over HTTP: sign-in sessions, who sees which pages, escaping of
//! customer data, and the live count behind the filter box.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::json;

use crate::support::*;

/// What a browser says of a request made from the console's own pages. Tests send it on
/// every POST, as the browser does; the cross-site checks have tests of their own.
const SEC_FETCH_SITE: &str = "sec-fetch-site";

/// Signs in with `key`; answers the session cookie (`None` if refused).
async fn sign_in(api: &Api, key: &str) -> (StatusCode, Option<String>, String) {
    let req = Request::builder()
        .method("POST")
        .header(SEC_FETCH_SITE, "same-origin")
        .uri("/console/sign-in")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("key={}", enc(key))))
        .unwrap();
    let (status, headers, _) = api.request_bytes(req).await;
    let cookie = headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap().to_owned())
        .filter(|c| !c.ends_with('='));
    let location = headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, cookie, location)
}

/// GETs a console page with a cookie; answers status, Location and the body as text.
async fn page(api: &Api, path: &str, cookie: Option<&str>) -> (StatusCode, String, String) {
    let mut req = Request::builder().method("GET").uri(path);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    let (status, headers, body) = api.request_bytes(req.body(Body::empty()).unwrap()).await;
    let location = headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, location, String::from_utf8(body).unwrap())
}

#[tokio::test]
async fn the_root_leads_to_the_sign_in_page() {
    let api = Api::new();
    let (status, location, _) = page(&api, "/", None).await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, "/console")
    );
    let (status, _, body) = page(&api, "/console", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("name=\"key\""), "{body}");
}

#[tokio::test]
async fn a_wrong_key_is_refused_and_gets_no_session() {
    let api = Api::new();
    let (status, cookie, _) = sign_in(&api, "not-a-key").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(cookie, None);
}

#[tokio::test]
async fn pages_need_a_session() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    for path in [
        "/console/apps".to_owned(),
        format!("/console/apps/{}/customers", app.id),
        format!("/console/apps/{}/fields", app.id),
        format!("/console/apps/{}/segments", app.id),
        format!("/console/apps/{}/segments/1", app.id),
        format!("/console/apps/{}/insights", app.id),
    ] {
        let (status, location, _) = page(&api, &path, None).await;
        assert_eq!(
            (status, location.as_str()),
            (StatusCode::SEE_OTHER, "/console"),
            "{path}"
        );
        let (status, _, _) = page(&api, &path, Some("unico_session=forged")).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{path} with a forged cookie");
    }
    let (status, _, _) = page(
        &api,
        &format!("/console/apps/{}/count?filter=", app.id),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_api_key_sees_its_own_application_only() {
    let api = Api::new();
    let mine = api.create_app("Mine").await;
    let other = api.create_app("Other").await;
    api.create_field(&other, "secret", "string").await;
    let (status, cookie, location) = sign_in(&api, &mine.key).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, format!("/console/apps/{}/customers", mine.id));
    let cookie = cookie.unwrap();
    let (status, _, body) = page(
        &api,
        &format!("/console/apps/{}/fields", mine.id),
        Some(&cookie),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Mine"));
    let (status, location, _) = page(
        &api,
        &format!("/console/apps/{}/fields", other.id),
        Some(&cookie),
    )
    .await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, "/console/apps")
    );
    let (_, _, body) = page(&api, "/console/apps", Some(&cookie)).await;
    assert!(body.contains("Mine") && !body.contains("Other"), "{body}");
}

#[tokio::test]
async fn customer_data_is_escaped_in_pages() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    api.create_field(&app, "note", "string").await;
    api.create_customer(
        &app,
        "<script>alert(1)</script>",
        json!({"note": "<img src=x onerror=alert(2)>"}),
    )
    .await;
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let (status, _, body) = page(
        &api,
        &format!("/console/apps/{}/customers", app.id),
        cookie.as_deref(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !body.contains("<script>alert(1)"),
        "customerId inserted unescaped"
    );
    assert!(!body.contains("<img src=x"), "value inserted unescaped");
    assert!(
        body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{body}"
    );
    assert!(body.contains("&lt;img src=x onerror=alert(2)&gt;"));
}

#[tokio::test]
async fn the_live_count_follows_the_filter_and_reports_errors() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    api.create_field(&app, "age", "number").await;
    for (id, age) in [("a", 20), ("b", 40), ("c", 60)] {
        api.create_customer(&app, id, json!({"age": age})).await;
    }
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let cookie = cookie.unwrap();
    let count = |filter: &str| format!("/console/apps/{}/count?filter={}", app.id, enc(filter));
    let json = |body: &str| serde_json::from_str::<serde_json::Value>(body).unwrap();
    let (status, _, body) = page(&api, &count("age>30"), Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        json(&body),
        json!({"count": 2, "text": "age > 30", "tree": {"field": "age", "op": "gt", "value": 30}}),
        "the count comes with the canonical text and tree the builder follows"
    );
    let (_, _, body) = page(&api, &count(""), Some(&cookie)).await;
    assert_eq!(json(&body), json!({"count": 3, "text": "", "tree": null}));
    // The builder posts the JSON form.
    let post = |body: serde_json::Value, cookie: Option<String>| {
        let mut req = Request::builder()
            .method("POST")
            .header(SEC_FETCH_SITE, "same-origin")
            .uri(format!("/console/apps/{}/count", app.id))
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        api.request_bytes(req.body(Body::from(body.to_string())).unwrap())
    };
    let tree = json!({"or": [{"field": "age", "op": "lt", "value": 30}, {"not": {"field": "age", "op": "between", "value": [10, 50]}}]});
    let (status, _, body) = post(json!({ "filter": tree }), Some(cookie.clone())).await;
    assert_eq!(status, StatusCode::OK);
    let body = json(std::str::from_utf8(&body).unwrap());
    assert_eq!(body["count"], 2, "{body}");
    assert_eq!(body["text"], "age < 30 or not age between 10 and 50");
    let (status, _, body) = post(
        json!({"filter": {"field": "age", "op": "contains", "value": "4"}}),
        Some(cookie.clone()),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a string operator on a number"
    );
    assert!(std::str::from_utf8(&body).unwrap().contains("contains"));
    let (status, _, _) = post(json!({ "filter": null }), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no session, no count");
    let (status, _, body) = page(&api, &count("agee > 30"), Some(&cookie)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("did you mean") || body.contains("agee"),
        "{body}"
    );
    let (_, _, body) = page(
        &api,
        &format!(
            "/console/apps/{}/customers?filter={}",
            app.id,
            enc("age >= 40")
        ),
        Some(&cookie),
    )
    .await;
    assert!(
        body.contains(">b<") && body.contains(">c<") && !body.contains(">a<"),
        "{body}"
    );
}

#[tokio::test]
async fn a_field_created_from_the_console_exists_and_bad_names_are_explained() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let cookie = cookie.unwrap();
    let post = |body: &str| {
        Request::builder()
            .method("POST")
            .header(SEC_FETCH_SITE, "same-origin")
            .uri(format!("/console/apps/{}/fields", app.id))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, cookie.clone())
            .body(Body::from(body.to_owned()))
            .unwrap()
    };
    let (status, headers, _) = api
        .request_bytes(post("name=loyalty+points&type=number"))
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        headers[header::LOCATION]
            .to_str()
            .unwrap()
            .contains("created=")
    );
    assert_eq!(api.fields(&app).await[0]["name"], "loyalty points");
    let (_, headers, _) = api.request_bytes(post("name=customerId&type=string")).await;
    let location = headers[header::LOCATION].to_str().unwrap().to_owned();
    assert!(location.contains("error="), "{location}");
    let (_, _, body) = page(&api, &location, Some(&cookie)).await;
    assert!(body.contains("reserved"), "{body}");
}

#[tokio::test]
async fn signing_out_or_revoking_the_key_ends_the_session() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let cookie = cookie.unwrap();
    let fields = format!("/console/apps/{}/fields", app.id);
    assert_eq!(page(&api, &fields, Some(&cookie)).await.0, StatusCode::OK);
    let (_, keys) = api.admin("GET", &app.path("/keys"), None).await;
    let key_id = keys["keys"][0]["id"].as_i64().unwrap();
    let (status, _) = api
        .admin("DELETE", &app.path(&format!("/keys/{key_id}")), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        page(&api, &fields, Some(&cookie)).await.0,
        StatusCode::SEE_OTHER
    );

    let (_, admin_cookie, _) = sign_in(&api, ADMIN).await;
    let admin_cookie = admin_cookie.unwrap();
    assert_eq!(
        page(&api, &fields, Some(&admin_cookie)).await.0,
        StatusCode::OK
    );
    let req = Request::builder()
        .method("POST")
        .header(SEC_FETCH_SITE, "same-origin")
        .uri("/console/sign-out")
        .header(header::COOKIE, admin_cookie.clone())
        .body(Body::empty())
        .unwrap();
    assert_eq!(api.request_bytes(req).await.0, StatusCode::SEE_OTHER);
    assert_eq!(
        page(&api, &fields, Some(&admin_cookie)).await.0,
        StatusCode::SEE_OTHER
    );
}

/// POSTs a form with the session cookie; answers status, Location and body.
async fn post_form(
    api: &Api,
    path: &str,
    cookie: &str,
    form: &str,
) -> (StatusCode, String, String) {
    let req = Request::builder()
        .method("POST")
        .header(SEC_FETCH_SITE, "same-origin")
        .uri(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, cookie)
        .body(Body::from(form.to_owned()))
        .unwrap();
    let (status, headers, body) = api.request_bytes(req).await;
    let location = headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, location, String::from_utf8(body).unwrap())
}

#[tokio::test]
async fn a_customer_is_edited_from_the_console_and_bad_values_change_nothing() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    api.create_field(&app, "age", "number").await;
    api.create_field(&app, "city", "string").await;
    api.create_customer(&app, "ana/1", json!({"age": 30, "city": "Madrid"}))
        .await;
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let cookie = cookie.unwrap();
    let path = format!("/console/apps/{}/customers/{}", app.id, enc("ana/1"));
    let (status, _, body) = page(&api, &path, Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("value=\"30\"") && body.contains("value=\"Madrid\""),
        "{body}"
    );
    assert!(
        body.contains("readonly"),
        "ID and customerId are shown read-only"
    );

    // One bad value: the form comes back with the message, and nothing is written.
    let (status, _, body) =
        post_form(&api, &path, &cookie, "f%3Aage=thirty&f%3Acity=Sevilla").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("expected a number"), "{body}");
    assert_eq!(
        api.get_customer(&app, "ana/1").await.unwrap()["fields"],
        json!({"age": 30, "city": "Madrid"})
    );

    // Trying to change ID or customerId through the form is ignored; values change.
    let (status, location, _) = post_form(
        &api,
        &path,
        &cookie,
        "id=99&customerId=other&f%3Aage=31&f%3Acity=",
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.ends_with("?saved=1"), "{location}");
    let customer = api.get_customer(&app, "ana/1").await.unwrap();
    assert_eq!(
        customer["fields"],
        json!({"age": 31}),
        "an empty box removes the value"
    );
    assert!(api.get_customer(&app, "other").await.is_none());

    let (status, location, _) = post_form(&api, &format!("{path}/delete"), &cookie, "").await;
    assert_eq!(
        (status, location),
        (
            StatusCode::SEE_OTHER,
            format!("/console/apps/{}/customers", app.id)
        )
    );
    assert!(api.get_customer(&app, "ana/1").await.is_none());
    let (status, _, _) = page(&api, &path, Some(&cookie)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_upload_box_imports_with_the_session_and_reports_rejected_rows() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    api.create_field(&app, "age", "number").await;
    let upload = |cookie: Option<&str>, mode: &str| {
        let mut req = Request::builder()
            .method("POST")
            .header(SEC_FETCH_SITE, "same-origin")
            .uri(format!("/console/apps/{}/imports?mode={mode}", app.id))
            .header(header::CONTENT_TYPE, "text/csv");
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        req.body(Body::from(
            "customerId,fieldName,fieldValue\na,age,3\nb,age,three\n",
        ))
        .unwrap()
    };
    let (status, _, _) = api.request_bytes(upload(None, "atomic")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let cookie = cookie.unwrap();
    for (mode, state, written) in [("atomic", "failed", 0), ("skip_invalid", "succeeded", 1)] {
        let reply = api.request(upload(Some(&cookie), mode)).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
        let id = reply.body["id"].as_i64().unwrap();
        let report = loop {
            let (_, _, body) = page(
                &api,
                &format!("/console/apps/{}/imports/{id}", app.id),
                Some(&cookie),
            )
            .await;
            let report: serde_json::Value = serde_json::from_str(&body).unwrap();
            if report["state"] != "running" {
                break report;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        };
        assert_eq!(report["state"], state, "{report}");
        assert_eq!(report["rows_written"], written);
        assert_eq!(report["errors"][0]["line"], 3);
        assert_eq!(report["errors"][0]["value"], "three");
    }
    assert_eq!(api.customer_ids(&app).await, ["a"]);
}

#[tokio::test]
async fn the_customers_filter_is_saved_as_a_segment_and_exported() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    api.create_field(&app, "age", "number").await;
    for (id, age) in [("a", 20), ("b", 40), ("c", 60)] {
        api.create_customer(&app, id, json!({"age": age})).await;
    }
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let cookie = cookie.unwrap();
    let segments = format!("/console/apps/{}/segments", app.id);
    let (status, location, _) =
        post_form(&api, &segments, &cookie, "name=Over+30&filter=age+%3E+30").await;
    let (_, list) = api.admin("GET", &app.path("/segments"), None).await;
    assert_eq!(list["segments"][0]["name"], "Over 30");
    assert_eq!(list["segments"][0]["count"], 2);
    let id = list["segments"][0]["id"].as_i64().unwrap();
    let segment = format!("{segments}/{id}");
    assert_eq!(
        (status, location),
        (StatusCode::SEE_OTHER, format!("{segment}?saved=1")),
        "saving opens the segment's page"
    );
    let (_, _, body) = page(&api, &segments, Some(&cookie)).await;
    assert!(
        body.contains("Over 30") && body.contains("age &gt; 30") && body.contains(&segment),
        "{body}"
    );
    // The segment's page: its filter, size, members, export and charts.
    let (status, _, body) = page(&api, &segment, Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("age &gt; 30") && body.contains(r#"id="segment-count">2<"#),
        "{body}"
    );
    assert!(
        body.contains(">b<") && body.contains(">c<") && !body.contains(">a<"),
        "{body}"
    );
    // The export link names the segment (so the file is named for it), and one for Excel.
    assert!(
        body.contains("export?format=wide&amp;segment=") && body.contains("&amp;excel=true"),
        "{body}"
    );
    assert!(
        body.contains("<svg") && body.contains("Fill rate"),
        "{body}"
    );
    // Update (name and filter), then delete.
    let (status, location, _) =
        post_form(&api, &segment, &cookie, "name=Over+50&filter=age+%3E+50").await;
    assert_eq!(
        (status, location),
        (StatusCode::SEE_OTHER, format!("{segment}?saved=1"))
    );
    let (_, got) = api
        .admin("GET", &app.path(&format!("/segments/{id}")), None)
        .await;
    assert_eq!(
        (got["name"].as_str(), got["count"].as_u64()),
        (Some("Over 50"), Some(1))
    );
    let (status, location, _) =
        post_form(&api, &segment, &cookie, "name=Over+50&filter=agee+%3E+50").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        location.contains(&format!("segment={id}")) && location.contains("error="),
        "{location}"
    );
    let (status, _, _) = post_form(&api, &format!("{segment}/delete"), &cookie, "").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _, _) = page(&api, &segment, Some(&cookie)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "deleted");

    let (status, location, _) =
        post_form(&api, &segments, &cookie, "name=Bad&filter=agee+%3E+30").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        location.contains("error="),
        "a bad filter goes back to the customers page: {location}"
    );

    let (status, _, csv) = page(
        &api,
        &format!(
            "/console/apps/{}/export?format=wide&filter={}",
            app.id,
            enc("age > 30")
        ),
        Some(&cookie),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(csv, "customerId,age\nb,40\nc,60\n");
    let (status, _, _) = page(&api, &format!("/console/apps/{}/export", app.id), None).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "no session, no export");
}

#[tokio::test]
async fn customers_are_searched_by_customer_id_and_fields_deleted_with_their_values() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    api.create_field(&app, "age", "number").await;
    for (id, age) in [("ana@x.com", 20), ("anabel\"q", 40), ("bob", 60)] {
        api.create_customer(&app, id, json!({"age": age})).await;
    }
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let cookie = cookie.unwrap();
    let list = |q: &str, filter: &str| {
        format!(
            "/console/apps/{}/customers?q={}&filter={}",
            app.id,
            enc(q),
            enc(filter)
        )
    };
    let (_, _, body) = page(&api, &list("ana", ""), Some(&cookie)).await;
    assert!(
        body.contains("ana@x.com") && body.contains("anabel&quot;q") && !body.contains(">bob<"),
        "{body}"
    );
    let (_, _, body) = page(&api, &list("ana", "age > 30"), Some(&cookie)).await;
    assert!(
        !body.contains("ana@x.com") && body.contains("anabel&quot;q"),
        "search and filter combine: {body}"
    );
    let (_, _, body) = page(&api, &list("anabel\"", ""), Some(&cookie)).await;
    assert!(
        body.contains("anabel&quot;q") && !body.contains("ana@x.com"),
        "quotes in the search are literal: {body}"
    );

    let (status, location, _) = post_form(
        &api,
        &format!("/console/apps/{}/fields/age/delete", app.id),
        &cookie,
        "",
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.contains("deleted="), "{location}");
    let (_, _, body) = page(&api, &location, Some(&cookie)).await;
    assert!(
        body.contains("Field age deleted with its 3 values."),
        "{body}"
    );
    assert_eq!(api.fields(&app).await, json!([]));
    assert_eq!(
        api.get_customer(&app, "bob").await.unwrap()["fields"],
        json!({})
    );
}

#[tokio::test]
async fn insights_chart_every_field_of_the_application() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    api.create_field(&app, "age", "number").await;
    api.create_field(&app, "tier", "string").await;
    api.create_field(&app, "birthdate", "date").await;
    api.create_field(&app, "note", "string").await;
    for (id, age, tier, born) in [
        ("a", 20, "gold", "1990-05-01"),
        ("b", 40, "gold", "1971-12-24"),
        ("c", 60, "<b>x</b>", "2001-02-03"),
    ] {
        api.create_customer(
            &app,
            id,
            json!({"age": age, "tier": tier, "birthdate": born}),
        )
        .await;
    }
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let (status, _, body) = page(
        &api,
        &format!("/console/apps/{}/insights", app.id),
        cookie.as_deref(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body.matches("<svg").count(),
        5,
        "fill, subscribers, age, tier, birthdate: {body}"
    );
    assert!(
        body.contains("All within one hour of"),
        "customers created at once say so: {body}"
    );
    assert!(
        body.contains(">1971<") && body.contains(">2001<"),
        "birthdates by year: {body}"
    );
    assert!(
        body.contains("<title>1989 to 1990: 1</title>"),
        "yearly buckets: {body}"
    );
    assert!(
        body.contains(">gold<") && body.contains("2 · 67%"),
        "top values with shares: {body}"
    );
    assert!(
        body.contains("&lt;b&gt;x&lt;/b&gt;") && !body.contains("<b>x</b>"),
        "labels are escaped"
    );
    assert!(
        body.contains("No value to chart"),
        "an empty field says so: {body}"
    );
}

#[tokio::test]
async fn the_customer_list_shows_the_columns_the_user_chose() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    for (name, ty) in [
        ("email", "string"),
        ("city", "string"),
        ("age", "number"),
        ("tier", "string"),
    ] {
        api.create_field(&app, name, ty).await;
    }
    api.create_customer(
        &app,
        "a",
        json!({"email": "a@x.es", "city": "Madrid", "age": 31, "tier": "gold"}),
    )
    .await;
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let cookie = cookie.unwrap();
    let customers = format!("/console/apps/{}/customers", app.id);
    let (_, _, body) = page(&api, &customers, Some(&cookie)).await;
    assert!(
        body.contains(">a@x.es<") && body.contains(">Madrid<") && !body.contains(">gold<"),
        "the first three fields by default: {body}"
    );

    // Field ids are not part of the API; a fresh store numbers them in creation order.
    let id_of = |name: &str| {
        ["email", "city", "age", "tier"]
            .iter()
            .position(|n| *n == name)
            .unwrap()
            + 1
    };
    let back = enc(&format!("{customers}?filter=age+%3E+1"));
    let form = format!(
        "col={}&col={}&col=999999&back={back}",
        id_of("tier"),
        id_of("age")
    );
    let req = Request::builder()
        .method("POST")
        .header(SEC_FETCH_SITE, "same-origin")
        .uri(format!("/console/apps/{}/columns", app.id))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, cookie.clone())
        .body(Body::from(form))
        .unwrap();
    let (status, headers, _) = api.request_bytes(req).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers[header::LOCATION].to_str().unwrap(),
        format!("{customers}?filter=age+%3E+1"),
        "back to the list as it was"
    );
    let chosen = headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(
        chosen,
        format!("unico_cols_{}={}.{}", app.id, id_of("age"), id_of("tier")),
        "in schema order, unknown ids dropped"
    );
    let both = format!("{cookie}; {chosen}");
    let (_, _, body) = page(&api, &customers, Some(&both)).await;
    assert!(
        body.contains(">gold<") && body.contains(">31<") && !body.contains(">Madrid<"),
        "{body}"
    );

    // A return address elsewhere is not followed.
    let req = Request::builder()
        .method("POST")
        .header(SEC_FETCH_SITE, "same-origin")
        .uri(format!("/console/apps/{}/columns", app.id))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, cookie.clone())
        .body(Body::from("back=https%3A%2F%2Fevil.example%2F"))
        .unwrap();
    let (_, headers, _) = api.request_bytes(req).await;
    assert_eq!(headers[header::LOCATION].to_str().unwrap(), customers);
}

#[tokio::test]
async fn the_console_refuses_hostile_counts_segments_and_columns_with_a_message() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    api.create_field(&app, "age", "number").await;
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let cookie = cookie.unwrap();
    let count = format!("/console/apps/{}/count", app.id);
    let post = |content_type: &'static str, body: &'static str| {
        let req = Request::builder()
            .method("POST")
            .header(SEC_FETCH_SITE, "same-origin")
            .uri(count.clone())
            .header(header::CONTENT_TYPE, content_type)
            .header(header::COOKIE, cookie.clone())
            .body(Body::from(body))
            .unwrap();
        api.request_bytes(req)
    };
    for (content_type, body, expected) in [
        (
            "application/json",
            r#"{"filter": {"field": "age""#,
            "line 1",
        ),
        ("application/json", r#"[1, 2]"#, "object"),
        ("text/plain", r#"{"filter": null}"#, "application/json"),
        ("application/json", r#"{"filter": {"nope": 1}}"#, "filter"),
        ("application/json", r#"{"filter": "age >"}"#, "column"),
    ] {
        let (status, _, reply) = post(content_type, body).await;
        let reply = String::from_utf8(reply).unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {reply}");
        assert!(reply.contains(expected), "{body}: {reply}");
    }

    // A segment name with a control character is refused as by the API; nothing is saved.
    let segments = format!("/console/apps/{}/segments", app.id);
    let (status, location, _) =
        post_form(&api, &segments, &cookie, "name=bad%07name&filter=age+%3E+1").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        location.contains("error=") && location.contains("control"),
        "{location}"
    );
    let (_, list) = api.admin("GET", &app.path("/segments"), None).await;
    assert_eq!(list["segments"], json!([]));

    // Column choices that are not field ids are dropped.
    let req = Request::builder()
        .method("POST")
        .header(SEC_FETCH_SITE, "same-origin")
        .uri(format!("/console/apps/{}/columns", app.id))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, cookie.clone())
        .body(Body::from("col=abc&col=-1&col=99999999999&col=1&col=%00"))
        .unwrap();
    let (status, headers, _) = api.request_bytes(req).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let chosen = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        chosen.starts_with(&format!("unico_cols_{}=1;", app.id)),
        "only the age field (id 1) is kept: {chosen}"
    );
}

/// Regression: `back=/console/apps/1/customers%0Ax` answered 500 "failed to parse header
/// value". A return address is followed only when it is this application's customer list;
/// anything else (line breaks, other sites, backslashes, dot segments, other paths) goes
/// back to the plain list, never a 500 and never off the console.
#[tokio::test]
async fn choosing_columns_with_a_hostile_return_address_goes_back_to_the_list() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    let other = api.create_app("Other").await;
    let (_, cookie, _) = sign_in(&api, ADMIN).await;
    let cookie = cookie.unwrap();
    let customers = format!("/console/apps/{}/customers", app.id);
    let hostile = [
        format!("{customers}\nx"),
        format!("{customers}\r\nSet-Cookie: unico_session=evil"),
        format!("{customers}?q=a\rb"),
        format!("{customers}?q=\t"),
        format!("{customers}?q=\u{7f}"),
        format!("{customers}?q=\u{0}"),
        format!("{customers}?q=caf\u{e9}"),
        "//evil.example".to_owned(),
        "//evil.example/console/apps".to_owned(),
        "https://evil".to_owned(),
        format!("https://evil{customers}"),
        "javascript:alert(1)".to_owned(),
        "/\\evil.example".to_owned(),
        "\\\\evil.example".to_owned(),
        format!("{customers}\\..\\..\\..\\..\\evil"),
        format!("{customers}/../../../../v1/apps"),
        format!("{customers}/%2e%2e/%2E%2E/%2e%2e/%2e%2e/v1/apps"),
        format!("{customers}/./x"),
        "/v1/apps".to_owned(),
        "/console".to_owned(),
        format!("/console/apps/{}/customers", other.id),
        format!("{customers}.evil"),
        format!("{customers}@evil.example"),
        String::new(),
    ];
    for back in &hostile {
        let (status, location, body) = post_form(
            &api,
            &format!("/console/apps/{}/columns", app.id),
            &cookie,
            &format!("col=1&back={}", enc(back)),
        )
        .await;
        assert_eq!(
            (status, location.as_str()),
            (StatusCode::SEE_OTHER, customers.as_str()),
            "back={back:?}: {body}"
        );
    }
    // The page's own return address, with its query and a fragment, is still followed.
    for back in [
        format!("{customers}?filter=age%20%3E%201&q="),
        format!("{customers}?q=ana#list"),
        format!("{customers}/ana%2F1"),
    ] {
        let (status, location, _) = post_form(
            &api,
            &format!("/console/apps/{}/columns", app.id),
            &cookie,
            &format!("back={}", enc(&back)),
        )
        .await;
        assert_eq!((status, location), (StatusCode::SEE_OTHER, back));
    }
}

/// Regression: sessions were capped at 10 000 in all and the oldest dropped, so 10 000
/// sign-ins with any application's key (three seconds) signed the admin out. Sessions are
/// now bounded per key, and sign-ins with one key are rate-limited.
#[tokio::test]
async fn many_sign_ins_with_one_key_do_not_end_another_keys_session() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    let (_, admin, _) = sign_in(&api, ADMIN).await;
    let admin = admin.unwrap();
    let (mut accepted, mut limited) = (0, 0);
    for _ in 0..=unico_server::console::session::MAX_SESSIONS {
        let (status, _, _) = sign_in(&api, &app.key).await;
        match status {
            StatusCode::SEE_OTHER => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("a sign-in with a valid key answered {other}"),
        }
    }
    let (status, _, _) = page(&api, "/console/apps", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "the admin is still signed in");
    assert!(
        accepted > 0 && limited > 0,
        "sign-ins with one key are rate-limited: {accepted} accepted, {limited} limited"
    );
}

/// Signs in with `key` from the client at `addr`; answers status and body.
async fn sign_in_from(api: &Api, key: &str, addr: &str) -> (StatusCode, String) {
    let mut req = Request::builder()
        .method("POST")
        .header(SEC_FETCH_SITE, "same-origin")
        .uri("/console/sign-in")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("key={}", enc(key))))
        .unwrap();
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(addr));
    let (status, _, body) = api.request_bytes(req).await;
    (status, String::from_utf8(body).unwrap())
}

#[tokio::test]
async fn a_client_that_keeps_failing_to_sign_in_is_held_back_and_others_are_not() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    let mut failures = 0;
    loop {
        let (status, body) = sign_in_from(&api, "unico_guess", "203.0.113.7:4000").await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert!(body.contains("Too many failed sign-ins"), "{body}");
            break;
        }
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        failures += 1;
        assert!(failures <= 100, "failed sign-ins are never held back");
    }
    let (status, _) = sign_in_from(&api, &app.key, "203.0.113.7:4001").await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "the client is held back, whatever key it tries now"
    );
    let (status, _) = sign_in_from(&api, &app.key, "198.51.100.2:4000").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "another client signs in");
}

/// A POST to `path` with `cookie` and exactly the `headers` given (what a page on another
/// site, or a client that is not a browser, would send); answers status, headers and body.
async fn post_with(
    api: &Api,
    path: &str,
    cookie: Option<&str>,
    headers: &[(&str, &str)],
    content_type: &str,
    body: &str,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut req = Request::builder()
        .method("POST")
        .uri(path)
        .header(header::CONTENT_TYPE, content_type);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let (status, headers, body) = api
        .request_bytes(req.body(Body::from(body.to_owned())).unwrap())
        .await;
    (status, headers, String::from_utf8(body).unwrap())
}

const FORM: &str = "application/x-www-form-urlencoded";

/// The session's form token, as the console's pages carry it (`None` if they do not).
async fn find_csrf_token(api: &Api, cookie: &str) -> Option<String> {
    let (status, _, body) = page(api, "/console/apps", Some(cookie)).await;
    assert_eq!(status, StatusCode::OK);
    let marker = r#"name="csrf" value=""#;
    let start = body.find(marker)? + marker.len();
    body[start..].split('"').next().map(str::to_owned)
}

async fn csrf_token(api: &Api, cookie: &str) -> String {
    find_csrf_token(api, cookie)
        .await
        .expect("the console's pages carry the session's form token")
}

/// Regression: a POST with `Origin: http://evil.example` and a valid cookie created a
/// field (the console relied on SameSite alone). Every state-changing console request
/// from another site is refused, whatever it carries.
#[tokio::test]
async fn a_cross_site_console_post_is_refused_and_changes_nothing() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let cookie = cookie.unwrap();
    // A stolen form token does not help either.
    let token = find_csrf_token(&api, &cookie).await.unwrap_or_default();
    let fields = format!("/console/apps/{}/fields", app.id);
    let host = ("host", "unico.test");
    for headers in [
        vec![("origin", "http://evil.example")],
        vec![("origin", "http://evil.example"), host],
        vec![("origin", "null"), host],
        vec![("origin", "http://unico.test.evil.example"), host],
        vec![("origin", "http://evil.example/unico.test"), host],
        vec![("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "same-site")],
        vec![
            ("sec-fetch-site", "cross-site"),
            ("origin", "http://unico.test"),
            host,
        ],
        vec![
            ("origin", "http://evil.example"),
            host,
            ("referer", "http://unico.test/console"),
        ],
    ] {
        let form = format!("name=stolen&type=string&csrf={token}");
        let (status, _, body) =
            post_with(&api, &fields, Some(&cookie), &headers, FORM, &form).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{headers:?}: {body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_error(&body, "forbidden", &["another site"]);
    }
    assert_eq!(api.fields(&app).await, json!([]), "nothing was created");

    // The same for the live count, the upload, signing out and signing in.
    let evil = [("origin", "http://evil.example")];
    let (status, _, _) = post_with(
        &api,
        &format!("/console/apps/{}/count", app.id),
        Some(&cookie),
        &evil,
        "application/json",
        r#"{"filter": null}"#,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = post_with(
        &api,
        &format!("/console/apps/{}/imports", app.id),
        Some(&cookie),
        &evil,
        "text/csv",
        "customerId\nintruder\n",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = post_with(&api, "/console/sign-out", Some(&cookie), &evil, FORM, "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        page(&api, &fields, Some(&cookie)).await.0,
        StatusCode::OK,
        "still signed in"
    );
    let (status, headers, _) = post_with(
        &api,
        "/console/sign-in",
        None,
        &evil,
        FORM,
        &format!("key={}", enc(&app.key)),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(headers.get(header::SET_COOKIE).is_none());
    assert_eq!(api.customer_ids(&app).await, Vec::<String>::new());
}

#[tokio::test]
async fn a_same_origin_console_post_is_accepted() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let cookie = cookie.unwrap();
    let fields = format!("/console/apps/{}/fields", app.id);
    let cases = [
        vec![("sec-fetch-site", "same-origin")],
        vec![
            ("sec-fetch-site", "same-origin"),
            ("origin", "http://unico.test"),
            ("host", "unico.test"),
        ],
        vec![("origin", "http://unico.test"), ("host", "unico.test")],
        vec![
            ("origin", "https://Unico.Test:8443"),
            ("host", "unico.test:8443"),
        ],
        // Behind a proxy that rewrote Host and said which host the browser asked for.
        vec![
            ("origin", "https://cdp.example"),
            ("host", "127.0.0.1:8080"),
            ("x-forwarded-host", "cdp.example"),
        ],
    ];
    for (i, headers) in cases.iter().enumerate() {
        let form = format!("name=f{i}&type=string");
        let (status, headers, body) =
            post_with(&api, &fields, Some(&cookie), headers, FORM, &form).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
        assert!(
            headers[header::LOCATION]
                .to_str()
                .unwrap()
                .contains("created=")
        );
    }
    assert_eq!(
        api.fields(&app).await.as_array().unwrap().len(),
        cases.len()
    );
}

/// A browser always sends `Origin` or `Sec-Fetch-Site` with a POST; a request with neither
/// (an old browser, or not a browser) acts with the session only with the session's token,
/// which the console's forms and scripts carry.
#[tokio::test]
async fn without_origin_or_fetch_metadata_a_console_post_needs_the_session_token() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let cookie = cookie.unwrap();
    let token = csrf_token(&api, &cookie).await;
    let (_, other, _) = sign_in(&api, &app.key).await;
    let other_token = csrf_token(&api, &other.unwrap()).await;
    assert_ne!(token, other_token, "each session has its own token");
    let fields = format!("/console/apps/{}/fields", app.id);
    for form in [
        "name=a&type=string".to_owned(),
        "name=a&type=string&csrf=".to_owned(),
        "name=a&type=string&csrf=wrong".to_owned(),
        format!("name=a&type=string&csrf={other_token}"),
    ] {
        let (status, _, body) = post_with(&api, &fields, Some(&cookie), &[], FORM, &form).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{form}: {body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_error(&body, "forbidden", &["token"]);
    }
    assert_eq!(api.fields(&app).await, json!([]));
    let (status, _, body) = post_with(
        &api,
        &fields,
        Some(&cookie),
        &[],
        FORM,
        &format!("name=a&type=string&csrf={token}"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(api.fields(&app).await[0]["name"], "a");
    // The scripts send it as a header.
    let count = format!("/console/apps/{}/count", app.id);
    let json = "application/json";
    let (status, _, _) = post_with(
        &api,
        &count,
        Some(&cookie),
        &[],
        json,
        r#"{"filter": null}"#,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, body) = post_with(
        &api,
        &count,
        Some(&cookie),
        &[("x-unico-csrf", &token)],
        json,
        r#"{"filter": null}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Signing in acts with no session, so it needs no token.
    let (status, _, _) = post_with(
        &api,
        "/console/sign-in",
        None,
        &[],
        FORM,
        &format!("key={}", enc(&app.key)),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn console_pages_carry_security_headers() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let cookie = cookie.unwrap();
    for (path, cookie) in [
        ("/console".to_owned(), None),
        ("/console/apps".to_owned(), Some(&cookie)),
        (format!("/console/apps/{}/customers", app.id), Some(&cookie)),
        (format!("/console/apps/{}/fields", app.id), Some(&cookie)),
        (
            format!("/console/apps/{}/customers/nobody", app.id),
            Some(&cookie),
        ),
        ("/console/assets/app.js".to_owned(), None),
        ("/console/assets/app.css".to_owned(), None),
    ] {
        let mut req = Request::builder().uri(&path);
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c.as_str());
        }
        let (_, headers, _) = api.request_bytes(req.body(Body::empty()).unwrap()).await;
        let get = |name: &str| {
            headers
                .get(name)
                .unwrap_or_else(|| panic!("{path}: no {name}"))
                .to_str()
                .unwrap()
                .to_owned()
        };
        let csp = get("content-security-policy");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(get("x-frame-options"), "DENY", "{path}");
        assert_eq!(get("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(get("referrer-policy"), "same-origin", "{path}");
    }
}

/// The policy forbids inline scripts and styles, so the pages must hold none: scripts and
/// styles come from the console's own files.
#[tokio::test]
async fn console_pages_hold_no_inline_script_or_style() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    api.create_field(&app, "age", "number").await;
    api.create_field(&app, "tier", "string").await;
    api.create_customer(&app, "ana", json!({"age": 31, "tier": "gold"}))
        .await;
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let cookie = cookie.unwrap();
    let (status, _, _) = post_form(
        &api,
        &format!("/console/apps/{}/segments", app.id),
        &cookie,
        "name=Adults&filter=age+%3E+18",
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    for path in [
        "/console".to_owned(),
        "/console/apps".to_owned(),
        format!("/console/apps/{}/customers", app.id),
        format!("/console/apps/{}/customers/ana", app.id),
        format!("/console/apps/{}/fields", app.id),
        format!("/console/apps/{}/segments", app.id),
        format!("/console/apps/{}/segments/1", app.id),
        format!("/console/apps/{}/insights", app.id),
    ] {
        let cookie = (path != "/console").then_some(cookie.as_str());
        let (status, _, body) = page(&api, &path, cookie).await;
        assert!(status == StatusCode::OK, "{path}: {status}");
        let lower = body.to_ascii_lowercase();
        assert!(!lower.contains("<style"), "{path}: a style element");
        assert!(!lower.contains(" style="), "{path}: a style attribute");
        for (i, _) in lower.match_indices("<script") {
            let tag = &lower[i..i + lower[i..].find('>').unwrap()];
            assert!(tag.contains(" src="), "{path}: an inline script {tag}");
        }
        for (i, _) in lower.match_indices(" on") {
            let name: String = lower[i + 3..]
                .chars()
                .take_while(char::is_ascii_lowercase)
                .collect();
            let after = lower[i + 3 + name.len()..].chars().next();
            assert!(
                name.is_empty() || after != Some('='),
                "{path}: an inline handler on{name}="
            );
        }
    }
}

#[tokio::test]
async fn the_console_cookies_are_secure_behind_https() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    let sign_in_over = |proto: Option<&'static str>| {
        let mut headers = vec![("sec-fetch-site", "same-origin")];
        if let Some(p) = proto {
            headers.push(("x-forwarded-proto", p));
        }
        let form = format!("key={}", enc(&app.key));
        let api = &api;
        async move {
            let (status, headers, _) =
                post_with(api, "/console/sign-in", None, &headers, FORM, &form).await;
            assert_eq!(status, StatusCode::SEE_OTHER);
            headers[header::SET_COOKIE].to_str().unwrap().to_owned()
        }
    };
    let secure = |cookie: &str| {
        cookie
            .split(';')
            .any(|a| a.trim().eq_ignore_ascii_case("secure"))
    };
    let plain = sign_in_over(None).await;
    assert!(!secure(&plain), "{plain}");
    let over_http = sign_in_over(Some("http")).await;
    assert!(!secure(&over_http), "{over_http}");
    let over_https = sign_in_over(Some("https")).await;
    assert!(secure(&over_https), "{over_https}");
    assert!(over_https.contains("HttpOnly") && over_https.contains("SameSite=Strict"));
    let cookie = over_https.split(';').next().unwrap().to_owned();
    // The column choice and signing out set cookies too.
    let https = [
        ("sec-fetch-site", "same-origin"),
        ("x-forwarded-proto", "https"),
    ];
    let (_, headers, _) = post_with(
        &api,
        &format!("/console/apps/{}/columns", app.id),
        Some(&cookie),
        &https,
        FORM,
        "col=1",
    )
    .await;
    assert!(secure(headers[header::SET_COOKIE].to_str().unwrap()));
    let (_, headers, _) =
        post_with(&api, "/console/sign-out", Some(&cookie), &https, FORM, "").await;
    assert!(secure(headers[header::SET_COOKIE].to_str().unwrap()));
}

/// A console form that does not parse (a field missing, bytes that are not UTF-8, another
/// content type) is a 400 in the error shape, like every invalid input: never a 422 (the
/// API does not use it), a 415, or a 500.
#[tokio::test]
async fn a_console_form_that_does_not_parse_is_a_400_in_the_error_shape() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let cookie = cookie.unwrap();
    let same = [("sec-fetch-site", "same-origin")];
    let fields = format!("/console/apps/{}/fields", app.id);
    let segments = format!("/console/apps/{}/segments", app.id);
    let columns = format!("/console/apps/{}/columns", app.id);
    for (path, content_type, body, code) in [
        (&fields, FORM, "name=a", "invalid_input"),
        (&segments, FORM, "filter=age", "invalid_input"),
        (&columns, "text/plain", "col=1", "invalid_content_type"),
        (
            &fields,
            "application/json",
            r#"{"name": "a", "type": "string"}"#,
            "invalid_content_type",
        ),
        (
            &fields,
            "text/plain",
            "name=a&type=string",
            "invalid_content_type",
        ),
    ] {
        let (status, _, reply) =
            post_with(&api, path, Some(&cookie), &same, content_type, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body}: {reply}");
        let reply: serde_json::Value = serde_json::from_str(&reply)
            .unwrap_or_else(|_| panic!("{path} {body}: not the error shape: {reply}"));
        assert_error(&reply, code, &[]);
    }
    let (status, _, reply) = post_with(&api, "/console/sign-in", None, &same, FORM, "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_eq!(api.fields(&app).await, json!([]));
}

/// Regression: the customerId search was left out of the count and the export ("5,000
/// customers match" above "No customer matches"; Export CSV after a search exported
/// everyone), and "← Customers" lost the list's search and filter.
#[tokio::test]
async fn the_search_and_the_filter_are_one_audience_for_count_rows_export_and_segment() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    api.create_field(&app, "age", "number").await;
    for (id, age) in [("martin", 20), ("martina", 40), ("zoe", 60)] {
        api.create_customer(&app, id, json!({"age": age})).await;
    }
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let cookie = cookie.unwrap();
    let json = |body: &str| serde_json::from_str::<serde_json::Value>(body).unwrap();
    let count = |filter: &str, q: &str| {
        format!(
            "/console/apps/{}/count?filter={}&q={}",
            app.id,
            enc(filter),
            enc(q)
        )
    };
    let (_, _, body) = page(&api, &count("", "zzzz"), Some(&cookie)).await;
    assert_eq!(json(&body)["count"], 0, "{body}");
    let (_, _, body) = page(&api, &count("age > 30", "mart"), Some(&cookie)).await;
    assert_eq!(
        json(&body),
        json!({"count": 1, "text": "age > 30", "tree": {"field": "age", "op": "gt", "value": 30}}),
        "the count is of both; the text and tree are the filter's, which the builder shows"
    );
    let req = Request::builder()
        .method("POST")
        .header(SEC_FETCH_SITE, "same-origin")
        .uri(format!("/console/apps/{}/count", app.id))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::COOKIE, &cookie)
        .body(Body::from(
            json!({"filter": null, "q": "martin"}).to_string(),
        ))
        .unwrap();
    let (_, _, body) = api.request_bytes(req).await;
    assert_eq!(json(std::str::from_utf8(&body).unwrap())["count"], 2);

    // The page's export link and segment form carry the search.
    let list = format!(
        "/console/apps/{}/customers?filter={}&q=martin",
        app.id,
        enc("age > 30")
    );
    let (_, _, body) = page(&api, &list, Some(&cookie)).await;
    assert!(
        body.contains("export?format=wide&amp;filter=age%20%3E%2030&amp;q=martin"),
        "{body}"
    );
    assert!(
        body.contains(r#"<input type="hidden" name="q" value="martin">"#),
        "{body}"
    );
    let (status, _, csv) = page(
        &api,
        &format!(
            "/console/apps/{}/export?format=wide&filter=&q=martin",
            app.id
        ),
        Some(&cookie),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(csv, "customerId,age\nmartin,20\nmartina,40\n");
    let (status, _, csv) = page(
        &api,
        &format!(
            "/console/apps/{}/export?format=wide&filter={}&q=mart",
            app.id,
            enc("age > 30")
        ),
        Some(&cookie),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(csv, "customerId,age\nmartina,40\n");

    let segments = format!("/console/apps/{}/segments", app.id);
    let (status, _, _) = post_form(
        &api,
        &segments,
        &cookie,
        "name=Martins&filter=age+%3C+50&q=martin",
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, listed) = api.admin("GET", &app.path("/segments"), None).await;
    assert_eq!(listed["segments"][0]["count"], 2, "{listed}");

    // A customer opened from the list goes back to the same list.
    let from = format!("?filter={}&q=martin", enc("age > 30"));
    assert!(
        body.contains(&format!("/customers/martina{}", from.replace('&', "&amp;"))),
        "{body}"
    );
    let (_, _, detail) = page(
        &api,
        &format!("/console/apps/{}/customers/martina{from}", app.id),
        Some(&cookie),
    )
    .await;
    assert!(
        detail.contains(&format!(
            r#"id="back-to-list" href="/console/apps/{}/customers{}""#,
            app.id,
            from.replace('&', "&amp;")
        )),
        "{detail}"
    );
}

/// The search finds customers by the start of their customerId or of any string field (a
/// name, an email), in any case, and not by text in the middle of a value; the count, the
/// rows, the export and a segment saved from it agree.
#[tokio::test]
async fn the_search_finds_names_and_emails_by_their_start_in_any_case() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    api.create_field(&app, "first_name", "string").await;
    api.create_field(&app, "email", "string").await;
    api.create_field(&app, "age", "number").await;
    for (id, fields) in [
        ("c1", json!({"first_name": "Martina", "age": 30})),
        ("c2", json!({"email": "MARTIN@example.com", "age": 40})),
        ("martinez", json!({"first_name": "Luis", "age": 50})),
        (
            "c4",
            json!({"first_name": "Ana", "email": "ana@martin.es", "age": 60}),
        ),
        ("c5", json!({"first_name": "Zoe", "age": 70})),
    ] {
        api.create_customer(&app, id, fields).await;
    }
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let cookie = cookie.unwrap();
    let count = |filter: &str| {
        format!(
            "/console/apps/{}/count?filter={}&q=martin",
            app.id,
            enc(filter)
        )
    };
    let (_, _, body) = page(&api, &count(""), Some(&cookie)).await;
    let counted: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(counted["count"], 3, "{body}");
    let list = format!("/console/apps/{}/customers?q=martin", app.id);
    let (_, _, body) = page(&api, &list, Some(&cookie)).await;
    for shown in ["/customers/c1", "/customers/c2", "/customers/martinez"] {
        assert!(body.contains(shown), "{shown} missing");
    }
    for hidden in ["/customers/c4", "/customers/c5"] {
        assert!(!body.contains(hidden), "{hidden} listed");
    }
    let (status, _, csv) = page(
        &api,
        &format!(
            "/console/apps/{}/export?format=wide&filter={}&q=MARTIN",
            app.id,
            enc("age >= 40")
        ),
        Some(&cookie),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(ids, ["c2", "martinez"], "{csv}");
    let (_, _, body) = page(&api, &count("age >= 40"), Some(&cookie)).await;
    let counted: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(counted["count"], 2, "{body}");
}

/// Saving a segment under a name the application already uses (in any case) is refused with
/// a message, and the customers page comes back with what was typed: name, filter, search.
#[tokio::test]
async fn a_taken_segment_name_is_refused_and_what_was_typed_is_kept() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    api.create_field(&app, "age", "number").await;
    api.create_customer(&app, "ana", json!({"age": 40})).await;
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let cookie = cookie.unwrap();
    let segments = format!("/console/apps/{}/segments", app.id);
    let (status, _, _) = post_form(&api, &segments, &cookie, "name=VIPs&filter=age+%3E+30").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, location, _) =
        post_form(&api, &segments, &cookie, "name=vips&filter=age+%3E+35&q=an").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        location.starts_with(&format!("/console/apps/{}/customers?", app.id)),
        "{location}"
    );
    let (status, _, html) = page(&api, &location, Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("exists already"), "the message is shown");
    assert!(html.contains("value=\"vips\""), "the typed name is kept");
    assert!(html.contains("age &gt; 35"), "the typed filter is kept");
    let (_, list) = api.admin("GET", &app.path("/segments"), None).await;
    let names: Vec<&str> = list["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["VIPs"], "nothing was saved");
}

#[tokio::test]
async fn a_customers_timeline_shows_their_events_escaped_in_the_apps_time_zone() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    api.admin(
        "PATCH",
        &format!("/v1/apps/{}", app.id),
        Some(json!({"timezone": "Europe/Madrid"})),
    )
    .await;
    api.send(
        "POST",
        &app.path("/event-types"),
        Some(&app.key),
        Some(json!({"code": "purchase"})),
    )
    .await;
    api.send(
        "POST",
        &app.path("/event-types"),
        Some(&app.key),
        Some(json!({"code": "email_open"})),
    )
    .await;
    let mut events = vec![
        json!({"customerId": "ana", "type": "purchase", "channel": "pos",
        "timestamp": "2026-07-01T10:00:00Z", "properties": {"note": "<img src=x onerror=alert(3)>", "amount": 12.5}}),
    ];
    for day in 1..=60 {
        events.push(json!({"customerId": "ana", "type": "email_open", "channel": "email",
            "timestamp": format!("2026-0{}-{:02}T08:00:00Z", 3 + (day - 1) / 28, 1 + (day - 1) % 28)}));
    }
    let (status, body) = api
        .send(
            "POST",
            &app.path("/events"),
            Some(&app.key),
            Some(json!({"events": events})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let base = format!("/console/apps/{}/customers/ana", app.id);
    let (status, _, profile) = page(&api, &base, cookie.as_deref()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(profile.contains("61</b> interactions"), "{profile}");
    // 10:00 UTC is 12:00 in Madrid in July.
    assert!(profile.contains("2026-07-01 12:00"), "{profile}");
    assert!(profile.contains("Timeline"));
    let (status, _, timeline) =
        page(&api, &format!("{base}?tab=timeline"), cookie.as_deref()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !timeline.contains("<img src=x"),
        "property inserted unescaped"
    );
    assert!(timeline.contains("&lt;img src=x onerror=alert(3)&gt;"));
    assert!(timeline.contains("Times in Europe/Madrid"));
    assert_eq!(timeline.matches("<li>").count(), 50, "one page of 50");
    assert!(timeline.contains("Older interactions"));
    // The next page holds the rest, and a type filter only that type.
    let next = timeline
        .split("href=\"")
        .find(|s| s.contains("before="))
        .and_then(|s| s.split('"').next())
        .unwrap()
        .replace("&amp;", "&");
    let (_, _, older) = page(&api, &next, cookie.as_deref()).await;
    assert_eq!(older.matches("<li>").count(), 11, "{older}");
    let (_, _, purchases) = page(
        &api,
        &format!("{base}?tab=timeline&type=purchase"),
        cookie.as_deref(),
    )
    .await;
    assert_eq!(purchases.matches("<li>").count(), 1);
    assert!(purchases.contains("ch-pos"));
}

#[tokio::test]
async fn the_interactions_page_and_a_segments_page_chart_what_customers_did() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    api.create_field(&app, "country", "string").await;
    for code in ["purchase", "email_open"] {
        api.send(
            "POST",
            &app.path("/event-types"),
            Some(&app.key),
            Some(json!({"code": code})),
        )
        .await;
    }
    api.create_customer(&app, "ana", json!({"country": "ES"}))
        .await;
    api.create_customer(&app, "bob", json!({"country": "FR"}))
        .await;
    api.create_customer(&app, "cy", json!({"country": "ES"}))
        .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let day = 86_400_000;
    let events = json!([
        {"customerId": "ana", "type": "purchase", "channel": "pos", "timestamp": now - day},
        {"customerId": "ana", "type": "purchase", "channel": "web", "timestamp": now - 10 * day},
        {"customerId": "bob", "type": "email_open", "channel": "email", "timestamp": now - 40 * day},
        {"customerId": "cy", "type": "email_open", "channel": "email", "timestamp": now - 200 * day},
    ]);
    let (status, body) = api
        .send(
            "POST",
            &app.path("/events"),
            Some(&app.key),
            Some(json!({"events": events})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let (status, _, page_body) = page(
        &api,
        &format!("/console/apps/{}/interactions", app.id),
        cookie.as_deref(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page_body.contains("4 events stored"), "{page_body}");
    assert!(
        page_body.contains("3 events in the last 90 days"),
        "{page_body}"
    );
    // Active: ana in the last 7 days; ana in 30; ana and bob in 90 (of 3 customers).
    assert!(page_body.contains("Last 7 days: 1 of 3"), "{page_body}");
    assert!(page_body.contains("Last 30 days: 1 of 3"));
    assert!(page_body.contains("Last 90 days: 2 of 3"));
    assert!(page_body.contains("purchase: 2 of 3"), "{page_body}");
    assert!(page_body.contains("email: 1 of 3"));
    // A segment's page: the same for its members only.
    let (status, segment) = api
        .send(
            "POST",
            &app.path("/segments"),
            Some(&app.key),
            Some(json!({"name": "Spain", "filter": "country = \"ES\""})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{segment}");
    let (status, _, seg_page) = page(
        &api,
        &format!("/console/apps/{}/segments/{}", app.id, segment["id"]),
        cookie.as_deref(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(seg_page.contains("What these customers did"));
    // The builder offers the channels the events use besides the well-known ones.
    let (status, _) = api
        .send(
            "POST",
            &app.path("/events"),
            Some(&app.key),
            Some(
                json!({"events": [{"customerId": "ana", "type": "purchase", "channel": "kiosk"}]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, count) = api
        .send(
            "POST",
            &app.path("/count"),
            Some(&app.key),
            Some(json!({"filter": "did purchase on kiosk"})),
        )
        .await;
    assert_eq!(count["count"], 1, "{count}");
    let (_, _, customers) = page(
        &api,
        &format!("/console/apps/{}/customers", app.id),
        cookie.as_deref(),
    )
    .await;
    let channels = customers
        .split("data-channels=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    assert!(
        channels.contains("whatsapp") && channels.contains("kiosk"),
        "{channels}"
    );
    assert!(seg_page.contains("Last 90 days: 1 of 2"), "{seg_page}");
    assert!(seg_page.contains("2 events in the last 90 days"));
}

#[tokio::test]
async fn a_computed_field_is_defined_shown_locked_and_charted_in_the_console() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    let (status, body) = api
        .send(
            "POST",
            &app.path("/event-types"),
            Some(&app.key),
            Some(json!({"code": "purchase", "properties": {"amount": "number"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = api
        .send(
            "POST",
            &app.path("/events"),
            Some(&app.key),
            Some(json!({"events": [
                {"customerId": "ana", "type": "purchase", "channel": "web", "properties": {"amount": 30}},
                {"customerId": "ana", "type": "purchase", "channel": "web", "properties": {"amount": 12.5}},
                {"customerId": "bob", "type": "purchase", "channel": "pos", "properties": {"amount": 5}}
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let cookie = cookie.unwrap();
    let fields = format!("/console/apps/{}/fields", app.id);
    // A definition the application cannot hold comes back with its reason and what was typed.
    let (status, location, _) = post_form(
        &api,
        &fields,
        &cookie,
        "kind=computed&name=spent&agg=sum&event=purchase&property=&within_last=90d",
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, body) = page(&api, &location, Some(&cookie)).await;
    assert!(body.contains("needs the number property"), "{body}");
    assert!(
        body.contains("value=\"90d\""),
        "what was typed stays: {body}"
    );
    let (status, location, _) = post_form(
        &api,
        &fields,
        &cookie,
        "kind=computed&name=spent&agg=sum&event=purchase&property=amount&within_last=90d",
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.contains("created=spent"), "{location}");
    assert_eq!(
        api.fields(&app).await[0]["computed"],
        json!({"event": "purchase", "agg": "sum", "property": "amount", "within_last": "90d"})
    );
    let (_, _, body) = page(&api, &fields, Some(&cookie)).await;
    assert!(
        body.contains("sum amount of purchase within_last 90d"),
        "{body}"
    );

    // The customer page shows the value, locked, and saving the form leaves it alone.
    let ana = format!("/console/apps/{}/customers/ana", app.id);
    let (status, _, body) = page(&api, &ana, Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("value=\"42.5\"") && body.contains("readonly"),
        "{body}"
    );
    assert!(
        !body.contains("name=\"f:spent\""),
        "no input posts it: {body}"
    );
    let (status, _, _) = post_form(&api, &ana, &cookie, "f:spent=1").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        api.get_customer(&app, "ana").await.unwrap()["fields"]["spent"],
        json!(42.5)
    );
    // The list shows it as a column, and insights chart it.
    let list = format!("/console/apps/{}/customers", app.id);
    let (_, _, body) = page(&api, &list, Some(&cookie)).await;
    assert!(body.contains(">42.5<") && body.contains(">5<"), "{body}");
    let (_, _, body) = page(
        &api,
        &format!("/console/apps/{}/insights", app.id),
        Some(&cookie),
    )
    .await;
    assert_eq!(
        body.matches("<svg").count(),
        3,
        "fill, subscribers and spent: {body}"
    );
    assert!(
        body.contains("<title>spent: 2 of 2</title>")
            && body.contains("<title>40 to 45: 1</title>"),
        "{body}"
    );
}

#[tokio::test]
async fn the_customer_page_shows_and_changes_subscriptions() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    api.create_customer(&app, "ana", json!({})).await;
    let (status, body) = api
        .send(
            "PUT",
            &app.path("/customers/ana/subscriptions/sms"),
            Some(&app.key),
            Some(json!({"subscribed": true, "source": "checkout"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let cookie = cookie.unwrap();
    let ana = format!("/console/apps/{}/customers/ana", app.id);
    let (status, _, body) = page(&api, &ana, Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("id=\"subscriptions\""), "{body}");
    assert!(
        body.contains("Subscribed") && body.contains("checkout"),
        "{body}"
    );
    assert!(
        body.contains("No consent recorded"),
        "email has none: {body}"
    );
    assert!(body.contains("Unsubscribe from sms"), "{body}");
    let (status, location, _) = post_form(
        &api,
        &format!("{ana}/subscriptions"),
        &cookie,
        "channel=email&subscribed=true",
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.ends_with("/customers/ana"), "{location}");
    let (_, body) = api
        .send(
            "GET",
            &app.path("/customers/ana/subscriptions"),
            Some(&app.key),
            None,
        )
        .await;
    assert_eq!(body["subscriptions"][0]["channel"], "email");
    assert_eq!(body["subscriptions"][0]["subscribed"], true);
    assert_eq!(body["subscriptions"][0]["source"], "console");
    // A channel the application does not take is refused, and nothing changes.
    let (status, _, _) = post_form(
        &api,
        &format!("{ana}/subscriptions"),
        &cookie,
        "channel=wallet&subscribed=true",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, _, body) = page(&api, &ana, Some(&cookie)).await;
    assert!(body.contains("Latest changes"), "{body}");
}

#[tokio::test]
async fn insights_show_the_subscribers_per_channel() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    for (id, email) in [("a", true), ("b", true), ("c", false), ("d", true)] {
        api.create_customer(&app, id, json!({})).await;
        let (status, body) = api
            .send(
                "PUT",
                &app.path(&format!("/customers/{id}/subscriptions/email")),
                Some(&app.key),
                Some(json!({"subscribed": email})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let (status, _, body) = page(
        &api,
        &format!("/console/apps/{}/insights", app.id),
        cookie.as_deref(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("<title>email: 3 of 4</title>"), "{body}");
    assert!(body.contains("<title>sms: 0 of 4</title>"), "{body}");
}

#[tokio::test]
async fn a_customer_is_exported_whole_and_erased_from_their_page() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    api.create_field(&app, "city", "string").await;
    api.create_customer(&app, "ana", json!({"city": "Vigo"}))
        .await;
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let cookie = cookie.unwrap();
    let ana = format!("/console/apps/{}/customers/ana", app.id);
    let (_, _, body) = page(&api, &ana, Some(&cookie)).await;
    assert!(body.contains("/customers/ana/export.json"), "{body}");
    assert!(body.contains("Erase customer"), "{body}");
    let (status, _, json_text) = page(&api, &format!("{ana}/export.json"), Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_str(&json_text).unwrap();
    assert_eq!(doc["customer"]["fields"]["city"], "Vigo");
    assert_eq!(doc["events"], json!([]));
    let (status, location, _) = post_form(&api, &format!("{ana}/erase"), &cookie, "").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.ends_with("/customers"), "{location}");
    assert!(api.get_customer(&app, "ana").await.is_none());
    let (status, _, _) = page(&api, &format!("{ana}/export.json"), Some(&cookie)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_applications_page_shows_the_audit_log_and_console_erasures_name_their_key() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    api.create_customer(&app, "ana", json!({})).await;
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let cookie = cookie.unwrap();
    let (status, _, _) = post_form(
        &api,
        &format!("/console/apps/{}/customers/ana/erase", app.id),
        &cookie,
        "",
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, body) = page(&api, "/console/apps", Some(&cookie)).await;
    assert!(body.contains("Audit log"), "{body}");
    assert!(body.contains("customer.erased"), "{body}");
    let (_, records) = api
        .send("GET", &app.path("/audit"), Some(&app.key), None)
        .await;
    assert!(
        records["records"][0]["actor"]
            .as_str()
            .unwrap()
            .starts_with("console key:"),
        "{records}"
    );
}

#[tokio::test]
async fn insights_chart_the_subscribers_over_the_last_weeks() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let day = 86_400_000i64;
    for (id, statements) in [
        ("ana", vec![(true, 60), (false, 10)]),
        ("bob", vec![(true, 20)]),
    ] {
        api.create_customer(&app, id, json!({})).await;
        for (subscribed, days_ago) in statements {
            let (status, body) = api
                .send(
                    "PUT",
                    &app.path(&format!("/customers/{id}/subscriptions/email")),
                    Some(&app.key),
                    Some(json!({"subscribed": subscribed, "at": now - days_ago * day})),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    }
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let (status, _, body) = page(
        &api,
        &format!("/console/apps/{}/insights", app.id),
        cookie.as_deref(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let chart = body
        .split("aria-label=\"email subscribers\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no chart: {body}"));
    let chart = &chart[..chart.find("</svg>").unwrap()];
    let counts: Vec<u64> = chart
        .split("</title>")
        .filter_map(|t| t.rsplit(": ").next()?.parse().ok())
        .collect();
    assert_eq!(counts.len(), 13, "{chart}");
    // Nobody 13 weeks ago; ana from 60 days ago; both between 20 and 10 days ago; bob now.
    assert_eq!(counts[0], 0, "{counts:?}");
    assert_eq!(counts.iter().max(), Some(&2), "{counts:?}");
    assert_eq!(counts[12], 1, "{counts:?}");
}

#[tokio::test]
async fn segments_offer_a_new_one_and_one_customer_reads_singular() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    api.create_field(&app, "city", "string").await;
    api.create_customer(&app, "ana", json!({"city": "Vigo"}))
        .await;
    let (status, segment) = api
        .send(
            "POST",
            &app.path("/segments"),
            Some(&app.key),
            Some(json!({"name": "Vigo", "filter": "city = \"Vigo\""})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{segment}");
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let (_, _, body) = page(
        &api,
        &format!("/console/apps/{}/segments", app.id),
        cookie.as_deref(),
    )
    .await;
    assert!(
        body.contains(&format!(
            "id=\"new-segment\" href=\"/console/apps/{}/customers\"",
            app.id
        )),
        "{body}"
    );
    let (_, _, body) = page(
        &api,
        &format!("/console/apps/{}/segments/{}", app.id, segment["id"]),
        cookie.as_deref(),
    )
    .await;
    assert!(body.contains("customer matches now"), "{body}");
    assert!(!body.contains("customers match now"), "{body}");
    // Duplicating saves a copy under a free name, with the same filter, and opens it.
    let cookie = cookie.unwrap();
    let duplicate = format!(
        "/console/apps/{}/segments/{}/duplicate",
        app.id, segment["id"]
    );
    for _ in 0..2 {
        let (status, location, _) = post_form(&api, &duplicate, &cookie, "").await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert!(location.contains("/segments/"), "{location}");
    }
    let (_, list) = api
        .send("GET", &app.path("/segments"), Some(&app.key), None)
        .await;
    let names: Vec<(&str, &str)> = list["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap(),
                s["filter_text"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(names.len(), 3, "{list}");
    for name in ["Vigo (copy)", "Vigo (copy 2)"] {
        assert!(names.contains(&(name, "city = \"Vigo\"")), "{list}");
    }
}

#[tokio::test]
async fn the_fields_page_lists_the_imports() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    api.create_field(&app, "age", "number").await;
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let fields = format!("/console/apps/{}/fields", app.id);
    let (_, _, body) = page(&api, &fields, cookie.as_deref()).await;
    assert!(body.contains("No import yet."), "{body}");
    let report = api
        .import_csv(
            &app,
            "?mode=skip_invalid",
            "customerId,fieldName,fieldValue\nana,age,31\nbob,age,old\n",
        )
        .await;
    assert_eq!(report["state"], "succeeded", "{report}");
    let (_, _, body) = page(&api, &fields, cookie.as_deref()).await;
    let history = body
        .split("id=\"import-history\"")
        .nth(1)
        .unwrap_or_else(|| panic!("{body}"));
    assert!(history.contains("customers · skip_invalid"), "{history}");
    assert!(history.contains("pill ok"), "{history}");
    // Rows read, created, updated, rejected (which opens the import's report).
    assert!(
        history.contains("<td class=\"num\">2</td><td class=\"num hide-narrow\">1</td><td class=\"num hide-narrow\">0</td><td class=\"num\"><a href="),
        "{history}"
    );
    assert!(
        history.contains(&format!(
            "fields?import={}#last-import\" title=\"This import's summary and rejected rows\">1</a>",
            report["id"]
        )),
        "{history}"
    );
    // Started through the API: no file, no console user.
    assert!(
        history.contains("<span class=\"sub\">API</span>"),
        "{history}"
    );
}

#[tokio::test]
async fn the_customer_page_links_identities_and_merges_after_a_preview() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    api.create_field(&app, "city", "string").await;
    api.create_customer(&app, "crm-1", json!({"city": "Madrid"}))
        .await;
    api.create_customer(&app, "shop-7", json!({"city": "Lyon"}))
        .await;
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let cookie = cookie.unwrap();
    let crm = format!("/console/apps/{}/customers/crm-1", app.id);

    // Link: normalised, and said so on the page.
    let (status, location, _) = post_form(
        &api,
        &format!("{crm}/identities"),
        &cookie,
        "kind=email&value=+Ana%40Example.com+",
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.contains("notice="), "{location}");
    let (_, _, body) = page(&api, &location, Some(&cookie)).await;
    assert!(body.contains("id=\"identities\""), "{body}");
    assert!(body.contains("ana@example.com"), "{body}");
    assert!(body.contains("Linked email ana@example.com."), "{body}");
    // A bad value is refused with its reason, nothing linked.
    let (_, location, _) = post_form(
        &api,
        &format!("{crm}/identities"),
        &cookie,
        "kind=phone&value=600",
    )
    .await;
    let (_, _, body) = page(&api, &location, Some(&cookie)).await;
    assert!(
        body.contains("Not linked:") && body.contains("international"),
        "{body}"
    );
    // Hostile text is escaped, never markup.
    let (_, location, _) = post_form(
        &api,
        &format!("{crm}/identities"),
        &cookie,
        "kind=external_code&value=%3Cscript%3Ex%3C%2Fscript%3E",
    )
    .await;
    let (_, _, body) = page(&api, &location, Some(&cookie)).await;
    assert!(!body.contains("<script>x</script>"), "{body}");
    assert!(body.contains("&lt;script&gt;x&lt;/script&gt;"), "{body}");

    // The list's search finds her by the identity.
    let (_, _, body) = page(
        &api,
        &format!("/console/apps/{}/customers?q=ANA%40example.com", app.id),
        Some(&cookie),
    )
    .await;
    assert!(
        body.contains("identity-match") && body.contains(">crm-1<"),
        "{body}"
    );

    // The merge preview says what will move, and moves nothing.
    let (_, _, body) = page(&api, &format!("{crm}?merge_from=shop-7"), Some(&cookie)).await;
    assert!(body.contains("id=\"merge-preview\""), "{body}");
    assert!(body.contains("city = Lyon"), "the value that loses: {body}");
    assert_eq!(api.customer_ids(&app).await, ["crm-1", "shop-7"]);
    let (_, _, body) = page(&api, &format!("{crm}?merge_from=crm-1"), Some(&cookie)).await;
    assert!(body.contains("Cannot merge:"), "{body}");

    let (status, location, _) =
        post_form(&api, &format!("{crm}/merge"), &cookie, "from=shop-7").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, body) = page(&api, &location, Some(&cookie)).await;
    assert!(body.contains("Merged shop-7 into this customer"), "{body}");
    assert!(
        body.contains("Merged into this customer"),
        "the alias is listed: {body}"
    );
    assert_eq!(api.customer_ids(&app).await, ["crm-1"]);
    let (_, audit) = api.admin("GET", &app.path("/audit"), None).await;
    assert!(
        audit["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["action"] == "customer.merged"
                && r["actor"].as_str().unwrap().starts_with("console")),
        "{audit}"
    );

    // Remove an identity.
    let (_, location, _) = post_form(
        &api,
        &format!("{crm}/identities/unlink"),
        &cookie,
        "kind=email&value=ana%40example.com",
    )
    .await;
    let (_, _, body) = page(&api, &location, Some(&cookie)).await;
    assert!(body.contains("Removed email ana@example.com."), "{body}");
}

/// `2026-07-01 15:30`: an RFC 3339 instant as the console shows it, `offset_ms` east of UTC.
fn shown_at(rfc3339: &str, offset_ms: i64) -> String {
    let ms = unico_core::time::parse_datetime(rfc3339).unwrap();
    unico_core::time::format_datetime(ms + offset_ms)[..16].replace('T', " ")
}

/// An application in Asia/Kolkata (UTC+05:30 all year, so the test does not depend on the
/// season) with a datetime field; answers it and a signed-in session's cookie.
async fn app_in_kolkata(api: &Api) -> (App, String) {
    let app = api.create_app("Mumbai Shop").await;
    let (status, body) = api
        .admin(
            "PATCH",
            &format!("/v1/apps/{}", app.id),
            Some(json!({"timezone": "Asia/Kolkata"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    api.create_field(&app, "last_purchase_at", "datetime").await;
    let (_, cookie, _) = sign_in(api, &app.key).await;
    (app, cookie.unwrap())
}

/// The stored value of ana's last_purchase_at.
async fn last_purchase(api: &Api, app: &App) -> serde_json::Value {
    api.get_customer(app, "ana").await.unwrap()["fields"]["last_purchase_at"].clone()
}

const KOLKATA: i64 = (5 * 60 + 30) * 60_000;

#[tokio::test]
async fn times_are_shown_in_the_applications_zone_and_say_which() {
    let api = Api::new();
    let (app, cookie) = app_in_kolkata(&api).await;
    let created = api
        .create_customer(
            &app,
            "ana",
            json!({"last_purchase_at": "2026-07-01T10:00:00Z"}),
        )
        .await;
    let created_at = created["created_at"].as_str().unwrap();
    let local = shown_at(created_at, KOLKATA);
    let utc = shown_at(created_at, 0);
    assert_ne!(local, utc);

    // The list: creation, modification and the datetime field, local; the zone said.
    let (status, _, list) = page(
        &api,
        &format!("/console/apps/{}/customers", app.id),
        Some(&cookie),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(list.contains(&local), "{local} in {list}");
    assert!(!list.contains(&utc), "no UTC time left in the list");
    assert!(list.contains("2026-07-01 15:30"), "{list}");
    assert!(list.contains("Times in Asia/Kolkata"), "{list}");

    // The customer's page: "Created … · last modified …" local, and the zone; the
    // datetime field in a date-and-time box on the zone's wall clock.
    let (status, _, customer) = page(
        &api,
        &format!("/console/apps/{}/customers/ana", app.id),
        Some(&cookie),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        customer.contains(&format!("Created {local} · last modified {local}")),
        "{customer}"
    );
    assert!(customer.contains("Times in Asia/Kolkata"), "{customer}");
    assert!(
        customer.contains(
            "type=\"datetime-local\" name=\"f:last_purchase_at\" value=\"2026-07-01T15:30\""
        ),
        "{customer}"
    );

    // A segment's page and the segments list.
    let (status, segment) = api
        .send(
            "POST",
            &app.path("/segments"),
            Some(&app.key),
            Some(json!({"name": "All", "filter": "customerId exists"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{segment}");
    let segment_local = shown_at(segment["created_at"].as_str().unwrap(), KOLKATA);
    let (_, _, seg_page) = page(
        &api,
        &format!("/console/apps/{}/segments/{}", app.id, segment["id"]),
        Some(&cookie),
    )
    .await;
    assert!(
        seg_page.contains(&format!("Created {segment_local}")),
        "{seg_page}"
    );
    assert!(seg_page.contains("Times in Asia/Kolkata"), "{seg_page}");
    assert!(
        seg_page.contains(&local),
        "the members' times are local too"
    );
    let (_, _, segments) = page(
        &api,
        &format!("/console/apps/{}/segments", app.id),
        Some(&cookie),
    )
    .await;
    assert!(segments.contains(&segment_local), "{segments}");
    assert!(segments.contains("Created (Asia/Kolkata)"), "{segments}");

    // The Applications page: each application's creation in its own zone.
    let (_, _, apps) = page(&api, "/console/apps", Some(&cookie)).await;
    let (_, app_reply) = api
        .admin("GET", &format!("/v1/apps/{}", app.id), None)
        .await;
    let app_local = shown_at(app_reply["created_at"].as_str().unwrap(), KOLKATA);
    assert!(apps.contains(&app_local), "{app_local} in {apps}");
    assert!(apps.contains("When (Asia/Kolkata)"), "{apps}");

    // Insights say the zone of their time charts.
    let (_, _, insights) = page(
        &api,
        &format!("/console/apps/{}/insights", app.id),
        Some(&cookie),
    )
    .await;
    assert!(insights.contains("Asia/Kolkata time"), "{insights}");
}

#[tokio::test]
async fn a_datetime_is_edited_on_the_zones_wall_clock_and_stored_as_the_right_instant() {
    let api = Api::new();
    let (app, cookie) = app_in_kolkata(&api).await;
    api.create_customer(&app, "ana", json!({})).await;
    let path = format!("/console/apps/{}/customers/ana", app.id);
    // What a datetime-local box sends: the zone's wall clock, to the minute or second.
    for (sent, utc) in [
        ("2026-07-01T15:30", "2026-07-01T10:00:00.000Z"),
        ("2026-07-01T15:30:05", "2026-07-01T10:00:05.000Z"),
        ("2026-01-01T02:00", "2025-12-31T20:30:00.000Z"),
        // An instant with its offset or Z (as the text box took) is stored as it is.
        ("2026-07-01T08:00:00Z", "2026-07-01T08:00:00.000Z"),
        ("2026-07-01T08:00:00+02:00", "2026-07-01T06:00:00.000Z"),
    ] {
        let (status, location, body) = post_form(
            &api,
            &path,
            &cookie,
            &format!("f%3Alast_purchase_at={}", enc(sent)),
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{sent}: {body}");
        assert!(location.contains("saved=1"), "{location}");
        assert_eq!(last_purchase(&api, &app).await, json!(utc), "{sent}");
    }
    // Shown back on the wall clock; a value with milliseconds keeps them, so saving the
    // form unchanged changes nothing.
    api.patch_customer(
        &app,
        "ana",
        json!({"fields": {"last_purchase_at": "2026-07-01T10:00:00.250Z"}}),
    )
    .await;
    let (_, _, body) = page(&api, &path, Some(&cookie)).await;
    assert!(
        body.contains("value=\"2026-07-01T15:30:00.250\" step=\"0.001\""),
        "{body}"
    );
    let (status, _, _) = post_form(
        &api,
        &path,
        &cookie,
        "f%3Alast_purchase_at=2026-07-01T15%3A30%3A00.250",
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        last_purchase(&api, &app).await,
        json!("2026-07-01T10:00:00.250Z")
    );
    // Nonsense is refused with the message, and nothing changes.
    let (status, _, body) = post_form(&api, &path, &cookie, "f%3Alast_purchase_at=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        last_purchase(&api, &app).await,
        json!("2026-07-01T10:00:00.250Z")
    );
}

/// The customerIds of a customer list page's rows, in order.
fn listed(body: &str) -> Vec<String> {
    let table = body
        .split("<table class=\"customers\">")
        .nth(1)
        .and_then(|t| t.split("</table>").next())
        .unwrap_or("");
    table
        .split("<td class=\"mono\"><a href=\"")
        .skip(1)
        .filter_map(|cell| cell.split_once("\">")?.1.split("</a>").next())
        .map(str::to_owned)
        .collect()
}

/// The `href` of the element whose attributes start with `attrs`, unescaped.
fn link(body: &str, attrs: &str) -> Option<String> {
    let rest = body.split(attrs).nth(1)?;
    let href = rest.split("href=\"").nth(1)?.split('"').next()?;
    Some(href.replace("&amp;", "&"))
}

/// `size` customers c01…, aged 1… (c01 the youngest).
async fn many_customers(api: &Api, app: &App, size: usize) {
    let batch: Vec<_> = (1..=size)
        .map(|i| json!({"customerId": format!("c{i:02}"), "fields": {"age": i, "city": if i % 2 == 0 { "Lyon" } else { "Nice" }}}))
        .collect();
    let (status, body) = api
        .send(
            "POST",
            &app.path("/customers/batch"),
            Some(&app.key),
            Some(json!(batch)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn the_customer_list_sorts_by_a_header_in_both_directions() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    api.create_field(&app, "age", "number").await;
    api.create_field(&app, "city", "string").await;
    api.create_field(&app, "note", "string").await;
    api.create_field(&app, "tier", "string").await;
    many_customers(&api, &app, 5).await;
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let cookie = cookie.unwrap();
    let list = format!("/console/apps/{}/customers", app.id);

    // By customerId, ascending, by default: the header says so, and its link reverses it.
    let (_, _, body) = page(&api, &list, Some(&cookie)).await;
    assert_eq!(listed(&body), ["c01", "c02", "c03", "c04", "c05"]);
    assert!(body.contains("<th aria-sort=\"ascending\"><a class=\"sort\" href=\"?filter=&amp;q=&amp;sort=-customerId\""), "{body}");
    // Every other header sorts by its column, ascending first.
    for key in ["created_at", "updated_at", "age", "city"] {
        assert!(
            body.contains(&format!("href=\"?filter=&amp;q=&amp;sort={key}\"")),
            "{key}"
        );
    }

    // Descending by age: the rows follow, the header says so and reverses it.
    let (_, _, body) = page(&api, &format!("{list}?sort=-age"), Some(&cookie)).await;
    assert_eq!(listed(&body), ["c05", "c04", "c03", "c02", "c01"]);
    assert!(body.contains("<th class=\"hide-narrow\" aria-sort=\"descending\"><a class=\"sort\" href=\"?filter=&amp;q=&amp;sort=age\""), "{body}");
    let (_, _, body) = page(&api, &format!("{list}?sort=age"), Some(&cookie)).await;
    assert_eq!(listed(&body), ["c01", "c02", "c03", "c04", "c05"]);
    assert!(
        body.contains(
            "aria-sort=\"ascending\"><a class=\"sort\" href=\"?filter=&amp;q=&amp;sort=-age\""
        ),
        "{body}"
    );

    // The order keeps the audience (filter and search) in its links, and the audience's
    // count, export and "save as segment" do not depend on it.
    let filtered = format!(
        "{list}?filter={}&q=c0&sort=-age",
        enc("age >= 2 and age <= 4")
    );
    let (_, _, body) = page(&api, &filtered, Some(&cookie)).await;
    assert_eq!(listed(&body), ["c04", "c03", "c02"]);
    assert!(
        body.contains(
            "href=\"?filter=age%20%3E%3D%202%20and%20age%20%3C%3D%204&amp;q=c0&amp;sort=age\""
        ),
        "{body}"
    );
    assert!(
        body.contains(
            "export?format=wide&amp;filter=age%20%3E%3D%202%20and%20age%20%3C%3D%204&amp;q=c0\""
        ),
        "{body}"
    );
    assert!(
        body.contains("name=\"filter\" value=\"age &gt;= 2 and age &lt;= 4\""),
        "{body}"
    );
    // A customer opened from the list goes back to it in the same order.
    assert!(body.contains("/customers/c04?filter="), "{body}");
    assert!(body.contains("sort=-age\">c04</a>"), "{body}");

    // An order the API cannot take (an unknown field) is ignored, not an error page.
    let (status, _, body) = page(&api, &format!("{list}?sort=-nope"), Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed(&body), ["c01", "c02", "c03", "c04", "c05"]);
}

#[tokio::test]
async fn the_customer_list_pages_forward_and_back_exactly_in_the_size_chosen() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    api.create_field(&app, "age", "number").await;
    api.create_field(&app, "city", "string").await;
    many_customers(&api, &app, 60).await;
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let cookie = cookie.unwrap();
    let list = format!("/console/apps/{}/customers", app.id);
    let get = |path: String| {
        let (api, cookie) = (&api, cookie.clone());
        async move {
            let (status, _, body) = page(api, &path, Some(&cookie)).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            body
        }
    };
    let range = |body: &str| {
        body.split("<span id=\"list-range\">")
            .nth(1)
            .and_then(|r| r.split("</span>").next())
            .unwrap_or("")
            .to_owned()
    };

    // 50 a page by default, the size offered with 25 and 100.
    let first = get(format!("{list}?sort=-age")).await;
    assert_eq!(listed(&first).len(), 50);
    assert_eq!(range(&first), "1–50");
    assert!(
        first.contains("<option value=\"50\" selected>50</option>"),
        "{first}"
    );
    assert!(first.contains("<option value=\"25\">") && first.contains("<option value=\"100\">"));
    assert!(
        first.contains("id=\"list-total\""),
        "the total's place, filled by the count"
    );
    assert!(
        link(&first, "id=\"page-prev\"").is_none(),
        "no previous on the first page"
    );

    // 25 a page: three pages, in order, each link keeping the order and the size.
    let page1 = get(format!("{list}?sort=-age&size=25")).await;
    assert!(page1.contains("<option value=\"25\" selected>25</option>"));
    assert_eq!(range(&page1), "1–25");
    assert_eq!(listed(&page1)[0], "c60");
    let next = link(&page1, "id=\"page-next\"").unwrap();
    assert!(
        next.contains("sort=-age") && next.contains("size=25"),
        "{next}"
    );
    let page2 = get(format!("{list}{next}")).await;
    assert_eq!(range(&page2), "26–50");
    assert_eq!(listed(&page2)[0], "c35");
    let page3 = get(format!(
        "{list}{}",
        link(&page2, "id=\"page-next\"").unwrap()
    ))
    .await;
    assert_eq!(range(&page3), "51–60");
    assert_eq!(listed(&page3).len(), 10);
    assert_eq!(listed(&page3)[9], "c01");
    assert!(
        link(&page3, "id=\"page-next\"").is_none(),
        "no next on the last page"
    );

    // Back returns to exactly the page before, and from there to the first.
    let back2 = get(format!(
        "{list}{}",
        link(&page3, "id=\"page-prev\"").unwrap()
    ))
    .await;
    assert_eq!(listed(&back2), listed(&page2));
    assert_eq!(range(&back2), "26–50");
    let back1 = link(&back2, "id=\"page-prev\"").unwrap();
    assert!(!back1.contains("cursor"), "{back1}");
    let back1 = get(format!("{list}{back1}")).await;
    assert_eq!(listed(&back1), listed(&page1));
    // The next page from there is the same second page again.
    assert_eq!(
        link(&back1, "id=\"page-next\"").unwrap(),
        link(&page1, "id=\"page-next\"").unwrap()
    );

    // The size form keeps the audience and the order (and starts at the first page).
    let form = page2
        .split("class=\"page-size\"")
        .nth(1)
        .unwrap()
        .split("</form>")
        .next()
        .unwrap();
    assert!(form.contains("name=\"sort\" value=\"-age\""), "{form}");
    assert!(
        form.contains("name=\"filter\"") && form.contains("name=\"q\""),
        "{form}"
    );
    assert!(!form.contains("cursor"), "{form}");

    // A customer opened from page 2 goes back to page 2.
    assert!(page2.contains("&amp;cursor="), "row links carry the page");

    // Paging a filtered audience keeps the filter; the export stays the whole audience.
    let filtered = get(format!("{list}?filter={}&size=25", enc("city = \"Lyon\""))).await;
    assert_eq!(listed(&filtered).len(), 25);
    let next = link(&filtered, "id=\"page-next\"").unwrap();
    assert!(next.contains("filter=city"), "{next}");
    let rest = get(format!("{list}{next}")).await;
    assert_eq!(range(&rest), "26–30");
    assert!(
        rest.contains("export?format=wide&amp;filter=city%20%3D%20%22Lyon%22&amp;q=\""),
        "{rest}"
    );
    // A size not offered is the default.
    let odd = get(format!("{list}?size=7")).await;
    assert_eq!(listed(&odd).len(), 50);
}

#[tokio::test]
async fn the_fields_a_filter_tests_are_shown_as_columns() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    for (name, ty) in [
        ("a", "string"),
        ("b", "string"),
        ("c", "string"),
        ("tier", "string"),
        ("score", "number"),
    ] {
        api.create_field(&app, name, ty).await;
    }
    api.create_customer(&app, "ana", json!({"tier": "gold", "score": 7}))
        .await;
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let cookie = cookie.unwrap();
    let list = format!("/console/apps/{}/customers", app.id);
    let header = |body: &str| {
        body.split("<thead>")
            .nth(1)
            .unwrap()
            .split("</thead>")
            .next()
            .unwrap()
            .to_owned()
    };
    let (_, _, plain) = page(&api, &list, Some(&cookie)).await;
    assert!(!header(&plain).contains(">tier<"), "{}", header(&plain));
    let (_, _, body) = page(
        &api,
        &format!(
            "{list}?filter={}",
            enc("tier = \"gold\" or not (score > 5)")
        ),
        Some(&cookie),
    )
    .await;
    let head = header(&body);
    assert!(
        head.contains(">tier<") && head.contains(">score<"),
        "{head}"
    );
    assert!(head.contains(">a<"), "the chosen columns stay: {head}");
    assert!(body.contains("title=\"gold\">gold</td>"), "{body}");
}

#[tokio::test]
async fn every_customer_input_is_named_and_a_refused_value_is_tied_to_its_message() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    for (name, ty) in [
        ("age", "number"),
        ("city name", "string"),
        ("birthdate", "date"),
        ("seen_at", "datetime"),
    ] {
        api.create_field(&app, name, ty).await;
    }
    api.create_customer(&app, "ana", json!({"age": 30})).await;
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let cookie = cookie.unwrap();
    let path = format!("/console/apps/{}/customers/ana", app.id);
    let named = |body: &str| {
        let form = body
            .split("id=\"customer-form\"")
            .nth(1)
            .unwrap()
            .split("</form>")
            .next()
            .unwrap()
            .to_owned();
        let inputs: Vec<&str> = form
            .split("<input ")
            .skip(1)
            .filter(|i| !i.contains("type=\"hidden\""))
            .collect();
        assert_eq!(inputs.len(), 6, "ID, customerId and the 4 fields: {form}");
        for input in inputs {
            let id = input
                .split("id=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or_else(|| panic!("an input without id: {input}"));
            assert!(
                form.contains(&format!("<label for=\"{id}\">")) || input.contains("aria-label="),
                "no accessible name for {input}"
            );
        }
        form
    };
    let (_, _, body) = page(&api, &path, Some(&cookie)).await;
    let form = named(&body);
    assert!(
        form.contains("<label for=\"field-2\">city name</label>"),
        "{form}"
    );
    assert!(!form.contains("aria-invalid"), "{form}");

    // A refused value: its input is marked invalid and described by its message.
    let (status, _, body) =
        post_form(&api, &path, &cookie, "f%3Aage=thirty&f%3Acity%20name=Lyon").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let form = named(&body);
    assert!(
        form.contains(
            "id=\"field-1\" type=\"text\" inputmode=\"decimal\" name=\"f:age\" value=\"thirty\" placeholder=\"42, -3.5\" aria-invalid=\"true\" aria-describedby=\"field-1-error\""
        ),
        "{form}"
    );
    assert!(
        form.contains("<div class=\"err\" id=\"field-1-error\">"),
        "{form}"
    );
    assert_eq!(
        form.matches("aria-invalid").count(),
        1,
        "only the wrong one"
    );
}

#[tokio::test]
async fn the_customers_page_exports_the_audience_for_excel_too() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    api.create_field(&app, "city", "string").await;
    api.create_customer(&app, "ana", json!({"city": "Lyon"}))
        .await;
    api.create_customer(&app, "bob", json!({"city": "Nice"}))
        .await;
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let cookie = cookie.unwrap();
    let (_, _, body) = page(
        &api,
        &format!(
            "/console/apps/{}/customers?filter={}&q=a&sort=-city&size=25",
            app.id,
            enc("city exists")
        ),
        Some(&cookie),
    )
    .await;
    let href = link(&body, "id=\"export-excel\"").unwrap();
    assert_eq!(
        href,
        format!(
            "/console/apps/{}/export?format=wide&excel=true&filter=city%20exists&q=a",
            app.id
        )
    );
    assert!(body.contains(">Export for Excel</a>"), "{body}");
    assert!(
        link(&body, "id=\"export-link\"")
            .unwrap()
            .ends_with("filter=city%20exists&q=a")
    );
    let (status, _, csv) = page(&api, &href, Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(csv.starts_with('\u{feff}'), "a byte order mark: {csv:?}");
    assert!(csv.contains("customerId;"), "{csv}");
    assert!(csv.contains("ana;Lyon") && !csv.contains("bob"), "{csv}");
}

/// The chart bars that lead to customers: (what the bar's title says, where it goes).
fn drill_links(body: &str) -> Vec<(String, String)> {
    body.split(r#"<a class="drill" href=""#)
        .skip(1)
        .map(|rest| {
            let (href, rest) = rest.split_once('"').unwrap();
            let label = rest
                .split_once("<title>")
                .and_then(|(_, l)| l.split_once("</title>"))
                .map(|(l, _)| l)
                .unwrap();
            (label.to_owned(), href.replace("&amp;", "&"))
        })
        .collect()
}

/// A number bar counts exactly the customers its link lists, also where a value sits on
/// a bucket's edge and the edges are fractions (0.1 steps do not add up exactly in
/// binary): every value falls in one bar, and that bar's link finds it.
#[tokio::test]
async fn fractional_chart_bars_count_what_their_links_list() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    api.create_field(&app, "score", "number").await;
    let scores: Vec<f64> = (0..24).map(|i| f64::from(20 + 3 * i) / 100.0).collect();
    for (i, score) in scores.iter().enumerate() {
        api.create_customer(&app, &format!("c{i:02}"), json!({ "score": score }))
            .await;
    }
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let cookie = cookie.as_deref();
    let (_, _, body) = page(&api, &format!("/console/apps/{}/insights", app.id), cookie).await;
    let bars: Vec<(String, String)> = drill_links(&body)
        .into_iter()
        .filter(|(label, _)| label.contains(" to "))
        .collect();
    assert!(bars.len() > 3, "{bars:?}");
    let mut seen = 0;
    for (label, href) in bars {
        let counted: usize = label.rsplit(": ").next().unwrap().parse().unwrap();
        let (status, _, listed_page) = page(&api, &href, cookie).await;
        assert_eq!(status, StatusCode::OK, "{href}");
        assert_eq!(listed(&listed_page).len(), counted, "{label} lists {href}");
        seen += counted;
    }
    assert_eq!(seen, scores.len());
}

#[tokio::test]
async fn chart_bars_drill_down_into_the_customers_they_count() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    api.create_field(&app, "age", "number").await;
    api.create_field(&app, "tier", "string").await;
    api.create_field(&app, "last visit", "string").await;
    for (id, age, tier) in [
        ("a", 20, "gold"),
        ("b", 40, "gold"),
        ("c", 60, "say \"hi\""),
    ] {
        api.create_customer(&app, id, json!({"age": age, "tier": tier}))
            .await;
    }
    api.create_customer(&app, "d", json!({"last visit": "x"}))
        .await;
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let cookie = cookie.as_deref();
    let (_, _, body) = page(&api, &format!("/console/apps/{}/insights", app.id), cookie).await;
    let links = drill_links(&body);
    let to = |label: &str| {
        links
            .iter()
            .find(|(l, _)| l.starts_with(label))
            .unwrap_or_else(|| panic!("no bar {label:?} in {links:?}"))
            .1
            .clone()
    };
    let follow = |href: String| {
        let api = &api;
        async move {
            let (status, _, body) = page(api, &href, cookie).await;
            assert_eq!(status, StatusCode::OK, "{href}");
            let mut ids = listed(&body);
            ids.sort();
            ids
        }
    };
    // A value, a value that needs quoting, a field whose name does, a number range.
    assert_eq!(follow(to("gold: 2 of 3")).await, ["a", "b"]);
    assert_eq!(follow(to("say &quot;hi&quot;: 1 of 3")).await, ["c"]);
    assert_eq!(follow(to("last visit: 1 of 4")).await, ["d"]);
    assert_eq!(follow(to("age: 3 of 4")).await, ["a", "b", "c"]);
    let range = links
        .iter()
        .find(|(l, _)| l.starts_with("40 to"))
        .unwrap_or_else(|| panic!("no age bucket from 40 in {links:?}"))
        .1
        .clone();
    assert_eq!(follow(range).await, ["b"]);
    // The last bucket holds the largest value.
    let last = links
        .iter()
        .rfind(|(l, _)| l.contains(" to "))
        .unwrap()
        .1
        .clone();
    assert_eq!(follow(last).await, ["c"]);
    assert!(
        !links.iter().any(|(l, _)| l.starts_with("(all others)")),
        "\"all others\" is not one value: {links:?}"
    );

    // On a segment's page, a bar narrows the segment's members.
    let (status, segment) = api
        .send(
            "POST",
            &app.path("/segments"),
            Some(&app.key),
            Some(json!({"name": "Over 30", "filter": "age > 30"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{segment}");
    let (_, _, body) = page(
        &api,
        &format!("/console/apps/{}/segments/{}", app.id, segment["id"]),
        cookie,
    )
    .await;
    let links = drill_links(&body);
    let gold = links
        .iter()
        .find(|(l, _)| l.starts_with("gold: 1 of 2"))
        .unwrap_or_else(|| panic!("no gold bar among the segment's: {links:?}"))
        .1
        .clone();
    assert_eq!(follow(gold).await, ["b"]);
}

#[tokio::test]
async fn the_builder_suggests_a_string_fields_most_frequent_values() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    api.create_field(&app, "country", "string").await;
    api.create_field(&app, "age", "number").await;
    api.create_field(&app, "email", "string").await;
    let mut batch = Vec::new();
    for i in 0..60 {
        let country = match i % 6 {
            0..=2 => "ES",
            3 | 4 => "FR",
            _ => "<i>PT</i>",
        };
        batch.push(json!({"customerId": format!("c{i}"),
            "fields": {"country": country, "age": i, "email": format!("p{i}@example.com")}}));
    }
    let (status, _) = api
        .send(
            "POST",
            &app.path("/customers/batch"),
            Some(&app.key),
            Some(json!(batch)),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let values = |field: &str, cookie: Option<String>| {
        let api = &api;
        let path = format!("/console/apps/{}/values?field={}", app.id, enc(field));
        async move {
            let (status, _, body) = page(api, &path, cookie.as_deref()).await;
            (
                status,
                serde_json::from_str::<serde_json::Value>(&body).unwrap_or_default(),
            )
        }
    };
    let (status, body) = values("country", cookie.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"values": [
            {"value": "ES", "count": 30},
            {"value": "FR", "count": 20},
            {"value": "<i>PT</i>", "count": 10},
        ]}),
        "most frequent first, as stored (the builder writes them as text)"
    );
    // Numbers are typed, and values each customer holds alone would be noise.
    assert_eq!(values("age", cookie.clone()).await.1, json!({"values": []}));
    assert_eq!(
        values("email", cookie.clone()).await.1,
        json!({"values": []})
    );
    assert_eq!(
        values("nope", cookie.clone()).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        values("country", None).await.0,
        StatusCode::UNAUTHORIZED,
        "no session, no values"
    );
    // The customers page points the builder at them.
    let (_, _, body) = page(
        &api,
        &format!("/console/apps/{}/customers", app.id),
        cookie.as_deref(),
    )
    .await;
    assert!(
        body.contains(&format!(
            "data-values-url=\"/console/apps/{}/values\"",
            app.id
        )),
        "{body}"
    );
}

/// The key shown once on a key page.
fn shown_key(body: &str) -> String {
    body.split("id=\"new-key\"")
        .nth(1)
        .and_then(|rest| rest.split("value=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no key shown: {body}"))
        .to_owned()
}

#[tokio::test]
async fn the_admin_creates_applications_sets_their_zone_and_manages_keys_in_the_console() {
    let api = Api::new();
    let (_, admin, _) = sign_in(&api, ADMIN).await;
    let admin = admin.unwrap();
    let (_, _, body) = page(&api, "/console/apps", Some(&admin)).await;
    assert!(body.contains("id=\"new-app\""), "{body}");
    assert!(
        body.contains("<option value=\"Europe/Madrid\">"),
        "time zones are suggested: {body}"
    );

    // A new application: its first key is shown once, not cached, and works.
    let (status, _, body) = post_form(
        &api,
        "/console/apps",
        &admin,
        "name=Tienda+%3Cb%3E&timezone=America%2FBogota",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains("Application created") && body.contains("Tienda &lt;b&gt;"),
        "{body}"
    );
    let key = shown_key(&body);
    let (status, apps) = api.send("GET", "/v1/apps", Some(&key), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(apps["apps"][0]["name"], "Tienda <b>");
    assert_eq!(apps["apps"][0]["timezone"], "America/Bogota");
    let app = apps["apps"][0]["id"].as_i64().unwrap();

    // Its time zone, changed by the admin.
    let (status, location, _) = post_form(
        &api,
        &format!("/console/apps/{app}/timezone"),
        &admin,
        "timezone=Asia%2FTokyo",
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.starts_with("/console/apps?done="), "{location}");
    let (_, got) = api.admin("GET", &format!("/v1/apps/{app}"), None).await;
    assert_eq!(got["timezone"], "Asia/Tokyo");
    let (_, location, _) = post_form(
        &api,
        &format!("/console/apps/{app}/timezone"),
        &admin,
        "timezone=Mars%2FOlympus",
    )
    .await;
    assert!(location.starts_with("/console/apps?error="), "{location}");
    let (_, _, body) = page(&api, &location, Some(&admin)).await;
    assert!(body.contains("class=\"flash bad\""), "{body}");
    let (_, got) = api.admin("GET", &format!("/v1/apps/{app}"), None).await;
    assert_eq!(got["timezone"], "Asia/Tokyo", "a bad zone changes nothing");

    // The application's own key: a second key, shown once; no new application, no zone.
    let (_, own, _) = sign_in(&api, &key).await;
    let own = own.unwrap();
    let (status, _, body) = post_form(&api, &format!("/console/apps/{app}/keys"), &own, "").await;
    assert_eq!(status, StatusCode::OK);
    let second = shown_key(&body);
    assert_ne!(second, key);
    assert_eq!(
        api.send("GET", &format!("/v1/apps/{app}"), Some(&second), None)
            .await
            .0,
        StatusCode::OK
    );
    let (_, _, body) = page(&api, "/console/apps", Some(&own)).await;
    assert!(!body.contains("id=\"new-app\""), "{body}");
    assert!(!body.contains("name=\"timezone\""), "{body}");
    assert_eq!(
        body.matches("/revoke\"").count(),
        2,
        "two active keys: {body}"
    );
    let (_, location, _) = post_form(&api, "/console/apps", &own, "name=Mine").await;
    assert!(location.starts_with("/console/apps?error="), "{location}");
    let (_, location, _) = post_form(
        &api,
        &format!("/console/apps/{app}/timezone"),
        &own,
        "timezone=UTC",
    )
    .await;
    assert!(location.starts_with("/console/apps?error="), "{location}");
    let (_, got) = api.admin("GET", "/v1/apps", None).await;
    assert_eq!(got["apps"].as_array().unwrap().len(), 1, "{got}");

    // Revoking the second key: it stops working at once.
    let (_, keys) = api
        .send("GET", &format!("/v1/apps/{app}/keys"), Some(&key), None)
        .await;
    let second_id = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| {
            second.starts_with(k["prefix"].as_str().unwrap()) && k["id"] != keys["keys"][0]["id"]
        })
        .map(|k| k["id"].as_i64().unwrap())
        .unwrap();
    let (status, location, _) = post_form(
        &api,
        &format!("/console/apps/{app}/keys/{second_id}/revoke"),
        &own,
        "",
    )
    .await;
    assert_eq!(
        (status, location.as_str()),
        (
            StatusCode::SEE_OTHER,
            "/console/apps?done=The%20key%20is%20revoked."
        )
    );
    assert_eq!(
        api.send("GET", &format!("/v1/apps/{app}"), Some(&second), None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (_, audit) = api.admin("GET", "/v1/audit", None).await;
    let actions: Vec<String> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["actor"].as_str().unwrap(),
                r["action"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        actions.contains(&"console admin app.created".to_owned())
            && actions.contains(&"console admin app.updated".to_owned())
            && actions
                .iter()
                .any(|a| a.starts_with("console key:") && a.ends_with("key.revoked")),
        "{actions:?}"
    );

    // Another application's key reaches none of this.
    let other = api.create_app("Other").await;
    let (_, other_cookie, _) = sign_in(&api, &other.key).await;
    let (_, location, _) = post_form(
        &api,
        &format!("/console/apps/{app}/keys"),
        &other_cookie.unwrap(),
        "",
    )
    .await;
    assert!(location.starts_with("/console/apps?error="), "{location}");
}

#[tokio::test]
async fn an_import_from_the_console_names_its_file_and_who_and_keeps_its_report_in_view() {
    let api = Api::new();
    let app = api.create_app("Shop").await;
    api.create_field(&app, "age", "number").await;
    let (_, cookie, _) = sign_in(&api, &app.key).await;
    let cookie = cookie.unwrap();
    let req = Request::builder()
        .method("POST")
        .header(SEC_FETCH_SITE, "same-origin")
        .uri(format!(
            "/console/apps/{}/imports?mode=skip_invalid&file={}",
            app.id,
            enc("spring <list>.csv")
        ))
        .header(header::CONTENT_TYPE, "text/csv")
        .header(header::COOKIE, &cookie)
        .body(Body::from("customerId,age\na,31\nb,old\n"))
        .unwrap();
    let (status, _, body) = api.request_bytes(req).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let started: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let id = started["id"].as_i64().unwrap();
    let report = api.wait_import(&app, id).await;
    assert_eq!(report["state"], "succeeded", "{report}");
    let (_, _, body) = page(
        &api,
        &format!("/console/apps/{}/fields?import={id}", app.id),
        Some(&cookie),
    )
    .await;
    let card = body
        .split("id=\"last-import\"")
        .nth(1)
        .unwrap_or_else(|| panic!("no import card: {body}"));
    assert!(
        card.contains("spring &lt;list&gt;.csv")
            && card.contains("by <span class=\"mono\">console key:"),
        "{card}"
    );
    assert!(
        card.contains("Imported: 1 row, 1 customer created, 0 updated, 1 row rejected (below)."),
        "{card}"
    );
    assert!(
        card.contains("<td class=\"mono cell\" title=\"old\">old</td>"),
        "{card}"
    );
    let history = body.split("id=\"import-history\"").nth(1).unwrap();
    assert!(history.contains("spring &lt;list&gt;.csv"), "{history}");
    assert!(
        history.contains(&format!("fields?import={id}#last-import")),
        "{history}"
    );
    // The API's import takes no file name: a stray one is refused there as before.
    let (status, _) = api
        .send_raw(
            "POST",
            &app.path("/imports?file=x.csv"),
            Some(&app.key),
            Some("text/csv"),
            b"customerId,age\nc,1\n".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
