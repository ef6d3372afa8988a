//! The interruption side of the control stack: for every open frame, the
//! fuel prepaid on the ways into it and whether those ways were checked.

/// What kind of wasm frame a [`Frame`] shadows.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// `block`, and the function body.
    Block,
    /// `loop`.
    Loop,
    /// `if`.
    If,
}

/// The interruption state of one open control frame, pushed and popped in
/// step with the translator's control stack.
pub(super) struct Frame {
    kind: Kind,
    /// Fuel every way into the frame's target adds for the stretch that
    /// starts there: for a loop its header, otherwise its continuation
    /// (see `prepay.rs`).
    prepaid: i64,
    /// Whether any branch targets the continuation (not for loops, whose
    /// branches go to the header).
    branched_to: bool,
    /// Whether every branch to the continuation so far was taken with a
    /// check behind it.
    branches_checked: bool,
    /// For `if`: whether a check had run at the `if` (where the else arm
    /// starts).
    head_checked: bool,
    /// For `if`, once `else` was seen: whether the then arm ended checked
    /// (or unreachable).
    then_end_checked: Option<bool>,
}

impl Frame {
    fn new(kind: Kind, prepaid: i64, head_checked: bool) -> Frame {
        Frame { kind, prepaid, branched_to: false, branches_checked: true, head_checked, then_end_checked: None }
    }

    /// A `block` (or the function body) whose continuation is prepaid
    /// `prepaid`.
    pub(super) fn block(prepaid: i64) -> Frame {
        Frame::new(Kind::Block, prepaid, false)
    }

    /// A `loop` whose header is prepaid `prepaid`.
    pub(super) fn loop_(prepaid: i64) -> Frame {
        Frame::new(Kind::Loop, prepaid, false)
    }

    /// An `if` whose continuation is prepaid `prepaid`, opened with
    /// `checked` as the check state.
    pub(super) fn if_(prepaid: i64, checked: bool) -> Frame {
        Frame::new(Kind::If, prepaid, checked)
    }

    /// The fuel prepaid for the frame's target.
    pub(super) fn prepaid(&self) -> i64 {
        self.prepaid
    }

    /// Records a branch to this frame, taken with `checked` as the check
    /// state. A branch to a loop goes back to its header, which checks.
    pub(super) fn branch(&mut self, checked: bool) {
        if self.kind != Kind::Loop {
            self.branched_to = true;
            self.branches_checked &= checked;
        }
    }

    /// Whether the frame's `end` joins nothing: a block no branch targets,
    /// through whose `end` straight-line code (and its fuel tally) runs on.
    pub(super) fn end_is_straight(&self) -> bool {
        self.kind == Kind::Block && !self.branched_to
    }

    /// The fuel the way out of this frame at its `end` (or, for `if`, at
    /// `else`) adds for the continuation, when that `end` joins anything.
    pub(super) fn end_prepay(&self) -> i64 {
        match self.kind {
            Kind::Block if self.branched_to => self.prepaid,
            Kind::If => self.prepaid,
            _ => 0,
        }
    }

    /// At `else`: the then arm ended with `checked` as the check state;
    /// returns the state the else arm starts with.
    pub(super) fn on_else(&mut self, checked: bool) -> bool {
        self.then_end_checked = Some(checked);
        self.head_checked
    }

    /// The check state after the frame's `end`, given that of the
    /// fallthrough into it: every way in (fallthrough, branches to the
    /// label, for `if` the other arm) must have checked.
    pub(super) fn checked_after_end(&self, fallthrough_checked: bool) -> bool {
        match self.kind {
            Kind::Block => fallthrough_checked && self.branches_checked,
            Kind::Loop => fallthrough_checked,
            Kind::If => {
                let other_arm = self.then_end_checked.unwrap_or(self.head_checked);
                fallthrough_checked && self.branches_checked && other_arm
            }
        }
    }
}
