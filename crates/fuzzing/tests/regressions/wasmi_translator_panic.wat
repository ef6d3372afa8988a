(module
  (type (;0;) (func (param i32 i64)))
  (memory (;0;) 0 0)
  (memory (;1;) i64 2 3)
  (global (;0;) (mut i32) i32.const 1000)
  (export "R" (func 0))
  (export "" (func 1))
  (export "2" (func 2))
  (export "3" (func 3))
  (export "4" (memory 0))
  (export "5" (memory 1))
  (func (;0;) (type 0) (param i32 i64)
    global.get 0
    i32.eqz
    if ;; label = @1
      unreachable
    end
    global.get 0
    i32.const 1
    i32.sub
    global.set 0
    memory.size 1
    i64.ctz
    i64.popcnt
    i64.load 1 offset=57806 align=4
    i64.load 1 offset=57969 align=4
    i64.load 1 offset=130944
    local.tee 1
    local.get 1
    i64.store32 1 offset=74862 align=1
    memory.size
    i64.load16_u align=1
    unreachable
  )
  (func (;1;) (type 0) (param i32 i64)
    global.get 0
    i32.eqz
    if ;; label = @1
      unreachable
    end
    global.get 0
    i32.const 1
    i32.sub
    global.set 0
  )
  (func (;2;) (type 0) (param i32 i64)
    global.get 0
    i32.eqz
    if ;; label = @1
      unreachable
    end
    global.get 0
    i32.const 1
    i32.sub
    global.set 0
  )
  (func (;3;) (type 0) (param i32 i64)
    global.get 0
    i32.eqz
    if ;; label = @1
      unreachable
    end
    global.get 0
    i32.const 1
    i32.sub
    global.set 0
  )
)

