//! Graph checks: inputs must name existing components, sources take none, transforms
//! and sinks need at least one, and the graph must be acyclic.

use crate::spans::PathSeg;
use crate::{Config, Diagnostic, Kind};
use std::collections::HashMap;

pub(crate) fn check(cfg: &Config, errors: &mut Vec<Diagnostic>) {
    let mut by_name: HashMap<&str, Kind> = HashMap::new();
    for c in &cfg.components {
        if let Some(prev) = by_name.insert(&c.name, c.kind) {
            let path = vec![PathSeg::Key(c.kind.table().into()), PathSeg::Key(c.name.clone())];
            errors.push(cfg.diag_key(
                &path,
                format!(
                    "`{}.{}`: the name `{}` is already used by `{}.{}`; component names must be unique",
                    c.kind.table(),
                    c.name,
                    c.name,
                    prev.table(),
                    c.name
                ),
            ));
        }
    }
    if cfg.components.is_empty() {
        errors.push(Diagnostic {
            file: cfg.file.clone(),
            line: 1,
            col: 1,
            message: "no components: define at least one [sources.NAME] and one [sinks.NAME]".into(),
        });
        return;
    }
    for c in &cfg.components {
        let base = vec![PathSeg::Key(c.kind.table().into()), PathSeg::Key(c.name.clone())];
        if c.kind != Kind::Source && c.inputs.is_empty() {
            errors.push(cfg.diag_key(
                &base,
                format!("`{}.{}`: missing key `inputs` (the components it reads from)", c.kind.table(), c.name),
            ));
        }
        for (i, input) in c.inputs.iter().enumerate() {
            let mut p = base.clone();
            p.push(PathSeg::Key("inputs".into()));
            p.push(PathSeg::Index(i));
            match by_name.get(input.component.as_str()) {
                None => {
                    let known: Vec<&str> = cfg
                        .components
                        .iter()
                        .filter(|o| o.kind != Kind::Sink && o.name != c.name)
                        .map(|o| o.name.as_str())
                        .collect();
                    errors.push(cfg.diag_value(
                        &p,
                        format!(
                            "`{}.{}.inputs[{i}]`: unknown component `{}`, expected one of {}",
                            c.kind.table(),
                            c.name,
                            input.component,
                            crate::list(&known)
                        ),
                    ));
                }
                Some(Kind::Sink) => errors.push(cfg.diag_value(
                    &p,
                    format!(
                        "`{}.{}.inputs[{i}]`: `{}` is a sink; sinks have no outputs",
                        c.kind.table(),
                        c.name,
                        input.component
                    ),
                )),
                Some(_) => {}
            }
        }
    }
    if !errors.is_empty() {
        return;
    }
    // Cycle detection (depth-first, colouring).
    let index: HashMap<&str, usize> = cfg.components.iter().enumerate().map(|(i, c)| (c.name.as_str(), i)).collect();
    let mut state = vec![0u8; cfg.components.len()];
    let mut stack = Vec::new();
    for start in 0..cfg.components.len() {
        if state[start] != 0 {
            continue;
        }
        if let Some(cycle) = dfs(cfg, &index, start, &mut state, &mut stack) {
            let c = &cfg.components[cycle[0]];
            let names: Vec<&str> = cycle.iter().map(|&i| cfg.components[i].name.as_str()).collect();
            let path =
                vec![PathSeg::Key(c.kind.table().into()), PathSeg::Key(c.name.clone()), PathSeg::Key("inputs".into())];
            errors.push(cfg.diag_value(
                &path,
                format!(
                    "`{}.{}.inputs`: cycle in the pipeline graph: {} -> {}",
                    c.kind.table(),
                    c.name,
                    names.join(" -> "),
                    names[0]
                ),
            ));
            return;
        }
    }
}

fn dfs(
    cfg: &Config,
    index: &HashMap<&str, usize>,
    n: usize,
    state: &mut [u8],
    stack: &mut Vec<usize>,
) -> Option<Vec<usize>> {
    state[n] = 1;
    stack.push(n);
    for input in &cfg.components[n].inputs {
        let m = index[input.component.as_str()];
        if state[m] == 1 {
            let pos = stack.iter().position(|&x| x == m).unwrap();
            return Some(stack[pos..].to_vec());
        }
        if state[m] == 0 {
            if let Some(c) = dfs(cfg, index, m, state, stack) {
                return Some(c);
            }
        }
    }
    stack.pop();
    state[n] = 2;
    None
}
