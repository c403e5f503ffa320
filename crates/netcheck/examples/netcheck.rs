//! The self-test as a program would embed it: results as they come, then the verdict.
//!
//! ```sh
//! cargo run -p rounds-netcheck --example netcheck -- http://127.0.0.1:8080
//! ```

use rounds_netcheck::{Options, Progress, ProxySettings, Status};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let server = rounds_netcheck::server_url(&address)?;
    let options = Options {
        proxy: ProxySettings::from_vars(|name| std::env::var(name).ok())?,
        ..Options::default()
    };
    let report = rounds_netcheck::run(&server, &options, |progress| match progress {
        Progress::Checking(path) => println!("checking {}…", path.label()),
        Progress::Done(result) => {
            let rtt = result
                .rtt
                .map(|d| format!(" in {} ms", d.as_millis()))
                .unwrap_or_default();
            let word = if result.status == Status::Pass {
                "works"
            } else {
                "does not work"
            };
            println!("  {} {word}{rtt}: {}", result.path.label(), result.detail);
            if let Some(advice) = &result.advice {
                println!("  → {advice}");
            }
        }
    })
    .await;
    println!("{}", report.summary);
    Ok(())
}
