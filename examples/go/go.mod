module github.com/polylock/polylock/examples/go

go 1.21
