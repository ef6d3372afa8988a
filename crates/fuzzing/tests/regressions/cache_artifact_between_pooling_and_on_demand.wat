(module
  (global (;0;) (mut i32) i32.const 1000)
)

