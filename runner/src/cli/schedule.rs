//! `gangway schedule create|list|show|disable|enable|terminate|delete`: job schedules, each
//! run a job whose manager task runs the command.

use std::time::Duration;

use anyhow::{bail, Context};
use gangway_api::client::{Client, ListOptions};
use gangway_api::cmdline::join_command_line;
use gangway_api::*;

use super::table::render;

/// What `gangway schedule create` takes.
pub struct Create {
    pub id: Option<String>,
    pub every: Option<Duration>,
    pub start_window: Option<Duration>,
    pub pool: Option<String>,
    pub command: Vec<String>,
}

/// `gangway schedule ACTION [ID]`.
pub fn schedule(c: &mut Client, action: &str, create: Create, json: bool) -> anyhow::Result<()> {
    let id = create.id.clone();
    let need = || id.clone().context("this command needs a schedule id");
    match action {
        "create" => {
            if create.command.is_empty() {
                bail!("nothing to run: give the command after `--`, e.g. gangway schedule create --every 1h -- ./backup.sh");
            }
            let id = create.id.unwrap_or_else(|| {
                format!("schedule-{}", gangway_api::common::random_hex(4).unwrap_or_else(|_| "00000000".into()))
            });
            let manager = JobManagerTask {
                id: "run".into(),
                command_line: join_command_line(&create.command),
                run_exclusive: Some(false),
                ..Default::default()
            };
            let p = JobScheduleAddParameter {
                id: id.clone(),
                display_name: None,
                schedule: Schedule {
                    recurrence_interval: create.every.map(IsoDuration),
                    start_window: create.start_window.map(IsoDuration),
                    ..Default::default()
                },
                job_specification: JobSpecification {
                    pool_info: PoolInformation { pool_id: create.pool.unwrap_or_else(|| "default".into()) },
                    job_manager_task: Some(manager),
                    ..Default::default()
                },
            };
            c.add_schedule(&p)?;
            gangway_api::outln!("{id}");
        }
        "list" => {
            let list = c.list_schedules(&ListOptions::default())?;
            if json {
                gangway_api::outln!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|s| {
                    vec![
                        s.id.clone(),
                        format!("{:?}", s.state).to_lowercase(),
                        s.schedule.recurrence_interval.map_or_else(|| "once".into(), |d| d.to_string()),
                        s.execution_info.next_run_time.map_or_else(|| "-".into(), |t| t.to_string()),
                        s.execution_info.recent_job.as_ref().map_or_else(|| "-".into(), |r| r.id.clone()),
                    ]
                })
                .collect();
            gangway_api::out!("{}", render(&["SCHEDULE", "STATE", "EVERY", "NEXT RUN", "RECENT JOB"], &rows));
        }
        "show" => gangway_api::outln!("{}", serde_json::to_string_pretty(&c.get_schedule(&need()?)?)?),
        "disable" | "enable" | "terminate" => {
            c.schedule_action(&need()?, action)?;
            gangway_api::errln!("job schedule {} {action}d", need()?);
        }
        "delete" => {
            c.delete_schedule(&need()?)?;
            gangway_api::errln!("job schedule {} deleted, with its jobs", need()?);
        }
        other => bail!("unknown schedule command '{other}' (create, list, show, disable, enable, terminate, delete)"),
    }
    Ok(())
}
