//! `/api/v1/query` and `/api/v1/query_range`: answers byte for byte as
//! Prometheus's, parameters, errors, timeouts and `format_query`.

use std::sync::Arc;
use std::time::Duration;

use crate::model::Labels;
use crate::web::{QueryEngine, QueryError, QueryValue};
use axum::http::StatusCode;

use super::*;

#[tokio::test]
async fn query_results_match_prometheus_byte_for_byte() {
    for name in [
        "query-vector1",
        "query-scalar",
        "query-tasks-by-state",
        "query-data-dashboard-api-subquery",
    ] {
        let engine = FakeEngine::new(Ok(query_value_of(&fixture_json(name))));
        let st = with_engine(&engine);
        let r = post_form(&st, "/api/v1/query", "query=q&time=1795664538.302").await;
        assert_fixture(&r, name);
        assert_eq!(
            engine.calls(),
            [Call::Instant("q".into(), 1_795_664_538_302)]
        );
    }
    for name in ["query_range-node-cpu", "query_range-histogram-quantile"] {
        let engine = FakeEngine::new(Ok(query_value_of(&fixture_json(name))));
        let st = with_engine(&engine);
        let r = post_form(
            &st,
            "/api/v1/query_range",
            "end=1795664538&query=q&start=1795664418&step=15",
        )
        .await;
        assert_fixture(&r, name);
        assert_eq!(
            engine.calls(),
            [Call::Range(
                "q".into(),
                1_795_664_418_000,
                1_795_664_538_000,
                15_000
            )]
        );
    }
}

#[tokio::test]
async fn query_encodes_special_values_and_strings() {
    let labels = Labels::from_pairs([("__name__", "x"), ("q", "a\"<b>")]);
    let engine = FakeEngine::new(Ok(QueryValue::Vector(vec![
        (labels.clone(), 1_500, f64::NAN),
        (labels.clone(), -1_500, f64::INFINITY),
        (labels.clone(), 1_435_781_451_050, 1e-7),
        (labels.clone(), 0, -2e21),
    ])));
    let r = get(&with_engine(&engine), "/api/v1/query?query=x").await;
    assert_eq!(
        r.body,
        concat!(
            r#"{"status":"success","data":{"resultType":"vector","result":["#,
            r#"{"metric":{"__name__":"x","q":"a\"\u003cb\u003e"},"value":[1.500,"NaN"]},"#,
            r#"{"metric":{"__name__":"x","q":"a\"\u003cb\u003e"},"value":[-1.500,"+Inf"]},"#,
            r#"{"metric":{"__name__":"x","q":"a\"\u003cb\u003e"},"value":[1435781451.050,"1e-07"]},"#,
            r#"{"metric":{"__name__":"x","q":"a\"\u003cb\u003e"},"value":[0,"-2e+21"]}]}}"#
        )
    );

    let engine = FakeEngine::new(Ok(QueryValue::Scalar(1_500, 1e-7)));
    let r = get(&with_engine(&engine), "/api/v1/query?query=x").await;
    assert_eq!(
        r.body,
        r#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"0.0000001"]}}"#
    );

    let engine = FakeEngine::new(Ok(QueryValue::String(4_000, "hi\n".into())));
    let r = get(&with_engine(&engine), "/api/v1/query?query=x").await;
    assert_eq!(
        r.body,
        r#"{"status":"success","data":{"resultType":"string","result":[4,"hi\n"]}}"#
    );

    let engine = FakeEngine::new(Ok(QueryValue::Matrix(Vec::new())));
    let r = get(&with_engine(&engine), "/api/v1/query?query=x[5m]").await;
    assert_eq!(
        r.body,
        r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#
    );
}

#[tokio::test]
async fn query_defaults_time_to_now_and_accepts_rfc3339() {
    let engine = FakeEngine::new(Ok(QueryValue::Vector(Vec::new())));
    let st = with_engine(&engine);
    get(&st, "/api/v1/query?query=up").await;
    get(&st, "/api/v1/query?query=up&time=2015-07-01T20:10:51.781Z").await;
    get(&st, "/api/v1/query?query=up&time=4").await;
    assert_eq!(
        engine.calls(),
        [
            Call::Instant("up".into(), NOW_MS),
            Call::Instant("up".into(), 1_435_781_451_781),
            Call::Instant("up".into(), 4_000),
        ]
    );
}

/// Go accepts any byte but controls in a request target. The `http` crate
/// under hyper rejects a raw `"`, `<`, `>` or space in the query before the
/// router runs, so clients must encode those; everything else (Ray's
/// `query=vector(1)`, braces, brackets, quotes `'`) arrives as sent.
#[tokio::test]
async fn unencoded_query_strings_are_accepted() {
    let engine = FakeEngine::new(Ok(QueryValue::Vector(Vec::new())));
    let st = with_engine(&engine);
    for uri in [
        "/api/v1/query?query=vector(1)",
        "/api/v1/query?query=sum(rate(ray_tasks{State=~'RUN.*',job!=`x`}[5m]))",
        "/api/v1/query?query=1+1",
        "/api/v1/query?query=a%20%2B%20b",
    ] {
        let r = get(&st, uri).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}");
    }
    assert_eq!(
        engine
            .calls()
            .into_iter()
            .map(|c| match c {
                Call::Instant(q, _) => q,
                Call::Range(q, ..) => q,
            })
            .collect::<Vec<_>>(),
        [
            "vector(1)",
            "sum(rate(ray_tasks{State=~'RUN.*',job!=`x`}[5m]))",
            "1 1",
            "a + b"
        ]
    );
}

#[tokio::test]
async fn post_form_equals_get_and_body_wins_over_url() {
    let value = query_value_of(&fixture_json("query_range-node-cpu"));
    let engine = FakeEngine::new(Ok(value));
    let st = with_engine(&engine);
    let params = "query=rate(x%5B1m%5D)&start=1795664418&end=1795664538&step=15s";
    let by_get = get(&st, &format!("/api/v1/query_range?{params}")).await;
    let by_post = post_form(&st, "/api/v1/query_range", params).await;
    let split = post_form(
        &st,
        "/api/v1/query_range?query=ignored&step=15",
        "query=rate(x%5B1m%5D)&start=1795664418&end=1795664538",
    )
    .await;
    assert_eq!(by_get.status, StatusCode::OK);
    assert_eq!(by_get.body, by_post.body);
    assert_eq!(by_get.body, split.body);
    let calls = engine.calls();
    assert_eq!(calls.len(), 3);
    assert!(calls.iter().all(|c| *c == calls[0]));
    assert_eq!(
        calls[0],
        Call::Range(
            "rate(x[1m])".into(),
            1_795_664_418_000,
            1_795_664_538_000,
            15_000
        )
    );
}

#[tokio::test]
async fn query_parameter_errors() {
    let engine = FakeEngine::new(Ok(QueryValue::Vector(Vec::new())));
    let st = with_engine(&engine);

    let r = get(&st, "/api/v1/query_range?query=up&start=1&end=2").await;
    assert_fixture(&r, "query_range-error-missing-step");

    let r = get(
        &st,
        "/api/v1/query_range?query=up&start=0&end=110010&step=10",
    )
    .await;
    assert_fixture(&r, "query_range-too-many-points");
    // Exactly 11,000 intervals (11,001 points) still pass.
    let r = get(
        &st,
        "/api/v1/query_range?query=up&start=0&end=110000&step=10",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);

    let r = get(&st, "/api/v1/query?query=up&time=x").await;
    assert_error(
        &r,
        400,
        "bad_data",
        r#"invalid parameter "time": Invalid time value for 'time': cannot parse "x" to a valid timestamp"#,
    );
    let r = get(&st, "/api/v1/query_range?query=up&end=2&step=1").await;
    assert_error(
        &r,
        400,
        "bad_data",
        r#"invalid parameter "start": cannot parse "" to a valid timestamp"#,
    );
    let r = get(&st, "/api/v1/query_range?query=up&start=5&end=2&step=1").await;
    assert_error(
        &r,
        400,
        "bad_data",
        r#"invalid parameter "end": end timestamp must not be before start time"#,
    );
    let r = get(&st, "/api/v1/query_range?query=up&start=1&end=2&step=0").await;
    assert_error(
        &r,
        400,
        "bad_data",
        r#"invalid parameter "step": zero or negative query resolution step widths are not accepted. Try a positive integer"#,
    );
    let r = get(&st, "/api/v1/query_range?query=up&start=1&end=2&step=5x").await;
    assert_error(
        &r,
        400,
        "bad_data",
        r#"invalid parameter "step": cannot parse "5x" to a valid duration"#,
    );
    let r = get(&st, "/api/v1/query?query=up&timeout=soon").await;
    assert_error(
        &r,
        400,
        "bad_data",
        r#"invalid parameter "timeout": cannot parse "soon" to a valid duration"#,
    );
    // None of the rejected requests reached the engine.
    assert_eq!(engine.calls().len(), 1);
}

#[tokio::test]
async fn engine_errors_map_to_prometheus_error_types() {
    let parse = "1:15: parse error: unexpected end of input inside braces";
    let engine = FakeEngine::new(Err(QueryError::BadData(parse.into())));
    let r = get(&with_engine(&engine), "/api/v1/query?query=x").await;
    assert_fixture(&r, "query-error-parse");
    // Range queries report parse errors without the parameter prefix.
    let r = get(
        &with_engine(&engine),
        "/api/v1/query_range?query=x&start=1&end=2&step=1",
    )
    .await;
    assert_error(&r, 400, "bad_data", parse);

    let want = fixture_json("query-error-many-to-many");
    let msg = want["error"].as_str().unwrap().to_string();
    let engine = FakeEngine::new(Err(QueryError::Execution(msg)));
    let r = post_form(&with_engine(&engine), "/api/v1/query", "query=x").await;
    assert_fixture(&r, "query-error-many-to-many");

    for (err, status, kind) in [
        (QueryError::Timeout("t".into()), 503, "timeout"),
        (QueryError::Canceled("c".into()), 503, "canceled"),
        (QueryError::Internal("i".into()), 500, "internal"),
    ] {
        let message = err.to_string();
        let engine = FakeEngine::new(Err(err));
        let r = get(&with_engine(&engine), "/api/v1/query?query=x").await;
        assert_error(&r, status, kind, &message);
    }
}

#[tokio::test]
async fn queries_without_an_engine_fail_cleanly() {
    let st = state();
    let r = get(&st, "/api/v1/query?query=vector(1)").await;
    assert_error(&r, 422, "execution", "query engine not available");
    let r = get(&st, "/api/v1/query_range?query=up&start=1&end=2&step=1").await;
    assert_error(&r, 422, "execution", "query engine not available");
    // Parameters are still validated first.
    let r = get(&st, "/api/v1/query_range?query=up&start=1&end=2").await;
    assert_fixture(&r, "query_range-error-missing-step");
}

/// An engine that takes longer than the query's `timeout`.
struct SlowEngine;

impl QueryEngine for SlowEngine {
    fn instant(&self, _: &str, _: i64) -> Result<QueryValue, QueryError> {
        std::thread::sleep(Duration::from_millis(300));
        Ok(QueryValue::Scalar(0, 0.0))
    }
    fn range(&self, _: &str, _: i64, _: i64, _: i64) -> Result<QueryValue, QueryError> {
        self.instant("", 0)
    }
}

#[tokio::test]
async fn query_timeout_parameter_is_honoured() {
    let mut st = state();
    st.engine = Some(Arc::new(SlowEngine));
    let r = get(&st, "/api/v1/query?query=x&timeout=10ms").await;
    assert_error(
        &r,
        503,
        "timeout",
        "query timed out in expression evaluation",
    );
    let r = get(&st, "/api/v1/query?query=x&timeout=5s").await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn format_query_uses_the_plugged_formatter() {
    let mut st = state();
    let r = get(&st, "/api/v1/format_query?query=up").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    st.formatter = Some(Arc::new(|q: &str| {
        if q.contains('{') && !q.contains('}') {
            Err("1:3: parse error: unexpected end of input inside braces".to_string())
        } else {
            Ok(q.split_whitespace().collect::<Vec<_>>().join(" "))
        }
    }));
    let r = post_form(&st, "/api/v1/format_query", "query=sum(%20up%20)").await;
    assert_eq!(r.body, r#"{"status":"success","data":"sum( up )"}"#);
    let r = get(&st, "/api/v1/format_query?query=up%7B").await;
    assert_error(
        &r,
        400,
        "bad_data",
        r#"invalid parameter "query": 1:3: parse error: unexpected end of input inside braces"#,
    );
}

// ---------------------------------------------------------------- series and labels
