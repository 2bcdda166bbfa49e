package graph

import (
	"context"
	"fmt"
	"io"
	"sync"
)

// ObserveOption adjusts ObserveOutputStream and AddOutputStreamPoller.
type ObserveOption func(*observeSettings)

type observeSettings struct{ bounds bool }

// ObserveTimestampBounds also reports bound changes: whenever the stream's
// bound advances without a packet, the observer gets an empty packet whose
// timestamp is the newly settled timestamp (the bound minus one).
func ObserveTimestampBounds() ObserveOption { return func(s *observeSettings) { s.bounds = true } }

// ObserveOutputStream calls fn with every packet of stream name, in
// timestamp order, from the graph's workers. fn must not block for long: it
// holds a worker and, through the queue bound, back-pressures the graph. An
// error from fn fails the run. Call it before StartRun.
func (g *Graph) ObserveOutputStream(name string, fn func(Packet) error, opts ...ObserveOption) error {
	var st observeSettings
	for _, o := range opts {
		o(&st)
	}
	calc := ProcessFunc(func(cc *CalculatorContext) error {
		p := cc.Input("")
		if p.IsEmpty() && !st.bounds {
			return nil
		}
		return fn(p)
	})
	return g.addSink("observer", name, calc, st.bounds)
}

func (g *Graph) addSink(kind, stream string, calc Calculator, bounds bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.started {
		return fmt.Errorf("graph: %s for stream %q must be added before StartRun", kind, stream)
	}
	s, ok := g.streams[stream]
	if !ok {
		return fmt.Errorf("graph: no stream %q to observe", stream)
	}
	name := fmt.Sprintf("%s_%s", kind, stream)
	for i := 2; g.nodeNamed(name); i++ {
		name = fmt.Sprintf("%s_%s_%d", kind, stream, i)
	}
	n := g.newNode(name, kind, nil, Contract{ProcessTimestampBounds: bounds})
	n.calc = calc
	n.priority = -1
	n.handler = handlerSpec{kind: handlerDefault, sets: [][]int{{0}}}
	n.addInput(PortRef{Name: stream}, s, false, g.maxQueue)
	g.order = append(g.order, n)
	return nil
}

func (g *Graph) nodeNamed(name string) bool {
	for _, n := range g.nodes {
		if n.name == name {
			return true
		}
	}
	return false
}

// OutputStreamPoller lets the application pull a stream's packets.
type OutputStreamPoller struct {
	mu      sync.Mutex
	packets []Packet
	closed  bool
	wake    chan struct{}
	g       *Graph
}

// AddOutputStreamPoller returns a poller for stream name. With
// ObserveTimestampBounds, bound changes arrive as empty packets. The poller
// buffers without limit, so poll it steadily. Call it before StartRun.
func (g *Graph) AddOutputStreamPoller(name string, opts ...ObserveOption) (*OutputStreamPoller, error) {
	var st observeSettings
	for _, o := range opts {
		o(&st)
	}
	p := &OutputStreamPoller{wake: make(chan struct{}, 1), g: g}
	if err := g.addSink("poller", name, &pollerCalc{p: p, bounds: st.bounds}, st.bounds); err != nil {
		return nil, err
	}
	return p, nil
}

type pollerCalc struct {
	Base
	p      *OutputStreamPoller
	bounds bool
}

func (c *pollerCalc) Process(cc *CalculatorContext) error {
	pk := cc.Input("")
	if pk.IsEmpty() && !c.bounds {
		return nil
	}
	c.p.mu.Lock()
	c.p.packets = append(c.p.packets, pk)
	c.p.mu.Unlock()
	c.p.signal()
	return nil
}

func (c *pollerCalc) Close(*CalculatorContext) error {
	c.p.mu.Lock()
	c.p.closed = true
	c.p.mu.Unlock()
	c.p.signal()
	return nil
}

func (p *OutputStreamPoller) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Next blocks until the next packet and returns it. After the last packet
// of a finished stream it returns io.EOF; if the run failed, the run's
// error; if ctx ends, ctx.Err().
func (p *OutputStreamPoller) Next(ctx context.Context) (Packet, error) {
	for {
		p.mu.Lock()
		if len(p.packets) > 0 {
			pk := p.packets[0]
			p.packets[0] = Packet{}
			p.packets = p.packets[1:]
			p.mu.Unlock()
			return pk, nil
		}
		closed := p.closed
		p.mu.Unlock()
		if closed {
			return Packet{}, io.EOF
		}
		select {
		case <-p.wake:
		case <-p.g.done:
			p.mu.Lock()
			more := len(p.packets) > 0
			p.mu.Unlock()
			if more {
				continue
			}
			if err := p.g.WaitUntilDone(ctx); err != nil {
				return Packet{}, err
			}
			return Packet{}, io.EOF
		case <-ctx.Done():
			return Packet{}, ctx.Err()
		}
	}
}

// QueueSize returns how many packets wait in the poller.
func (p *OutputStreamPoller) QueueSize() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.packets)
}
