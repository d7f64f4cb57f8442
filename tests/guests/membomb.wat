(module
  (memory (export "memory") 1)
  (func (export "_start")
    ;; 64 pages (4 MiB) at a time until the limiter says no, then give up.
    (loop $grow
      (br_if $grow (i32.ne (memory.grow (i32.const 64)) (i32.const -1))))
    unreachable))
