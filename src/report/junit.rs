//! `junit.xml`: the run as a JUnit test suite, so CI systems list its checks next
//! to unit tests. One test case for the session verdict (no session lost, every
//! session read back, not interrupted) and one per `[gates]` check.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::Summary;

fn failure(message: String) -> TestCaseStatus {
    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
    status.set_message(message);
    status
}

pub fn render(summary: &Summary) -> std::io::Result<String> {
    let mut suite = TestSuite::new(format!("sessionstorm.{}", summary.scenario));
    suite.set_time(std::time::Duration::from_secs_f64(
        summary.load_elapsed_s.max(0.0),
    ));

    let mut problems = Vec::new();
    if summary.anomalies.total > 0 {
        problems.push(format!("{} session anomalies", summary.anomalies.total));
    }
    if summary.sessions.unverified > 0 {
        problems.push(format!(
            "{} sessions could not be read back",
            summary.sessions.unverified
        ));
    }
    if summary.verdict.status == "interrupted" {
        problems.push("the run was interrupted".into());
    }
    let status = if problems.is_empty() {
        TestCaseStatus::success()
    } else {
        failure(problems.join("; "))
    };
    let mut case = TestCase::new("no session lost", status);
    case.set_classname(format!("sessionstorm.{}.verdict", summary.scenario));
    case.set_system_out(format!(
        "{} sessions created, {} checked in the final sweep, {} unverified; seed {}",
        summary.sessions.created,
        summary.sessions.checked,
        summary.sessions.unverified,
        summary.seed
    ));
    suite.add_test_case(case);

    for gate in &summary.gates {
        let value = gate
            .value
            .map_or_else(|| "no value".to_string(), |v| format!("{v}"));
        let status = if gate.passed {
            TestCaseStatus::success()
        } else {
            failure(format!("gate {} missed: the run had {value}", gate.expr))
        };
        let mut case = TestCase::new(format!("gate {}", gate.expr), status);
        case.set_classname(format!("sessionstorm.{}.gates", summary.scenario));
        case.set_system_out(format!("value {value}"));
        suite.add_test_case(case);
    }

    let mut report = Report::new(format!("sessionstorm run {}", summary.run_id));
    report.add_test_suite(suite);
    report.to_string().map_err(std::io::Error::other)
}
