module metalk8s-solutions.local/podtool

go 1.25.0
