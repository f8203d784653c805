//! `tailor-kustomize DIR`: renders a kustomization from `deploy/` to stdout as
//! a multi-document stream, the way `kubectl kustomize DIR` would (for the
//! subset of kustomize the manifests use). `scripts/test` validates its output.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use tailor_deploy_tests::kustomize;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir] = args.as_slice() else {
        eprintln!("usage: tailor-kustomize DIR");
        return ExitCode::from(2);
    };
    let rendered = kustomize::build(Path::new(dir))
        .map_err(|e| e.to_string())
        .and_then(|objects| kustomize::to_stream(&objects).map_err(|e| e.to_string()));
    match rendered {
        Ok(text) => match std::io::stdout().write_all(text.as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("tailor-kustomize: cannot write to stdout: {err}");
                ExitCode::FAILURE
            }
        },
        Err(err) => {
            eprintln!("tailor-kustomize: {err}");
            ExitCode::FAILURE
        }
    }
}
