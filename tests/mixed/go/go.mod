module github.com/polylock/polylock/tests/mixed/go

go 1.21

require github.com/polylock/polylock/bindings-go v0.0.0

replace github.com/polylock/polylock/bindings-go => ../../../bindings-go
