//! The task state machine: which operation is legal in which state.
//!
//! An illegal transition is `FailedPrecondition` (or `NotFound` for a signal to a
//! process that has finished, as containerd expects), never a panic or a hang.

use crate::error::{Error, Result};

/// The life cycle of a process (a task's init, or an exec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Created,
    Running,
    Paused,
    Stopped,
}

/// The operations that depend on the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Start,
    /// Add an exec process to the container.
    Exec,
    Kill,
    Delete,
    Pause,
    Resume,
    Update,
    Stats,
}

/// Whether `op` is legal on a process (named `what`, for the message) in `state`.
pub fn check(what: &str, op: Op, state: State) -> Result<()> {
    use State::*;
    let ok = match op {
        Op::Start => state == Created,
        Op::Exec | Op::Pause => state == Running,
        Op::Resume => state == Paused,
        Op::Kill | Op::Update | Op::Stats => state != Stopped,
        Op::Delete => matches!(state, Created | Stopped),
    };
    if ok {
        return Ok(());
    }
    if op == Op::Kill {
        return Err(Error::NotFound(format!("process already finished: {what}")));
    }
    let state = format!("{state:?}").to_lowercase();
    Err(Error::FailedPrecondition(format!(
        "cannot {} {what}: it is {state}",
        format!("{op:?}").to_lowercase()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim::protos::ttrpc::{self, Code};
    use State::*;

    fn code(op: Op, state: State) -> Option<Code> {
        check("container x", op, state)
            .err()
            .map(|e| match ttrpc::Error::from(e) {
                ttrpc::Error::RpcStatus(s) => s.code(),
                other => panic!("{other:?}"),
            })
    }

    #[test]
    fn legal_transitions() {
        for (op, state) in [
            (Op::Start, Created),
            (Op::Exec, Running),
            (Op::Kill, Created),
            (Op::Kill, Running),
            (Op::Kill, Paused),
            (Op::Delete, Created),
            (Op::Delete, Stopped),
            (Op::Pause, Running),
            (Op::Resume, Paused),
            (Op::Update, Running),
            (Op::Stats, Paused),
        ] {
            assert_eq!(code(op, state), None, "{op:?} in {state:?}");
        }
    }

    #[test]
    fn illegal_transitions_are_failed_precondition() {
        for (op, state) in [
            (Op::Start, Running),
            (Op::Start, Stopped),
            (Op::Start, Paused),
            (Op::Exec, Created),
            (Op::Exec, Stopped),
            (Op::Exec, Paused),
            (Op::Delete, Running),
            (Op::Delete, Paused),
            (Op::Pause, Created),
            (Op::Pause, Paused),
            (Op::Resume, Running),
            (Op::Update, Stopped),
            (Op::Stats, Stopped),
        ] {
            assert_eq!(
                code(op, state),
                Some(Code::FAILED_PRECONDITION),
                "{op:?} in {state:?}"
            );
        }
    }

    #[test]
    fn kill_of_a_finished_process_is_not_found() {
        assert_eq!(code(Op::Kill, Stopped), Some(Code::NOT_FOUND));
    }

    #[test]
    fn message_names_op_and_state() {
        let e = check("container x", Op::Start, Running).unwrap_err();
        assert_eq!(e.to_string(), "cannot start container x: it is running");
    }
}
