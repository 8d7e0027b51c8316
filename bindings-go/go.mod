module github.com/polylock/polylock/bindings-go

go 1.21
