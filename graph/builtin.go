package graph

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
)

// The built-in calculators. They are small and general; weir's engines
// build on them, and tests and docs use them.
func init() {
	Register(Spec{
		Name: "PassThrough",
		Doc: "PassThrough forwards every input packet unchanged to the output with the same TAG:index. " +
			"Inputs and outputs must pair up; any tags and any number of indexes are accepted. It declares a " +
			"timestamp offset of 0, so input bounds propagate to the outputs.",
		New:         func() Calculator { return &passThrough{} },
		GetContract: mirroredContract,
	})
	Register(Spec{
		Name: "TimestampShift",
		Doc: "TimestampShift re-stamps every packet at its timestamp plus the offset option (a duration, " +
			"possibly negative), e.g. to place a stream at its relativeStartOffsetMS. Bounds shift with it. " +
			"PreStream and PostStream packets keep their timestamps.",
		New: func() Calculator { return &timestampShift{} },
		Contract: Contract{
			Inputs:  []PortSpec{{Tag: "", Doc: "packets to shift"}},
			Outputs: []PortSpec{{Tag: "", Doc: "the same packets, shifted"}},
		},
		Options: []OptionSpec{{Name: "offset", Type: OptDuration, Default: "0s", Doc: "added to every timestamp (microsecond precision)"}},
	})
	Register(Spec{
		Name: "Counter",
		Doc: "Counter emits the running number of packets received (an int64), at each packet's timestamp, " +
			"and sets its optional TOTAL output side packet to the final count when it closes.",
		New: func() Calculator { return &counter{} },
		Contract: Contract{
			Inputs:            []PortSpec{{Tag: "", Doc: "packets to count"}},
			Outputs:           []PortSpec{{Tag: "", Type: reflect.TypeFor[int64](), Optional: true, Doc: "running count"}},
			OutputSidePackets: []PortSpec{{Tag: "TOTAL", Type: reflect.TypeFor[int64](), Optional: true, Doc: "final count"}},
		},
	})
	Register(Spec{
		Name: "Gate",
		Doc: "Gate forwards its untagged inputs to the matching outputs while allowed and drops them " +
			"otherwise, advancing the bounds either way. The ALLOW stream (bool) switches the gate from its " +
			"timestamp on; without it the ALLOW side packet, then the allow option, decide once.",
		New: func() Calculator { return &gate{} },
		GetContract: func(info NodeInfo) (Contract, error) {
			n := CountTag(info.Inputs, "")
			if n == 0 || n != CountTag(info.Outputs, "") || len(info.Outputs) != n {
				return Contract{}, fmt.Errorf("Gate needs as many untagged outputs as untagged inputs (got %d and %d), and no tagged outputs",
					n, CountTag(info.Outputs, ""))
			}
			return Contract{
				Inputs: []PortSpec{
					{Tag: "", Repeated: true, Doc: "packets to gate"},
					{Tag: "ALLOW", Type: reflect.TypeFor[bool](), Optional: true, Doc: "true opens the gate, false closes it"},
				},
				Outputs:          []PortSpec{{Tag: "", Repeated: true, Doc: "packets that passed"}},
				InputSidePackets: []PortSpec{{Tag: "ALLOW", Type: reflect.TypeFor[bool](), Optional: true, Doc: "initial state"}},
			}, nil
		},
		Options: []OptionSpec{{Name: "allow", Type: OptBool, Default: true, Doc: "initial state without ALLOW side packet"}},
	})
	Register(Spec{
		Name: "Merge",
		Doc: "Merge combines its untagged inputs into one output: at each timestamp it forwards the packet " +
			"of the lowest-index input that has one.",
		New: func() Calculator { return &merge{} },
		Contract: Contract{
			Inputs:  []PortSpec{{Tag: "", Repeated: true, Doc: "streams to merge"}},
			Outputs: []PortSpec{{Tag: "", Doc: "merged stream"}},
		},
	})
	Register(Spec{
		Name: "Throttle",
		Doc: "Throttle keeps at most one packet per interval of media time: a packet passes when it is at " +
			"least interval after the last one that passed. Deterministic (timestamps, not wall clock): use it " +
			"to sample frames for slow analysis; use the fixed_size handler to shed load under real-time pressure.",
		New: func() Calculator { return &throttle{} },
		Contract: Contract{
			Inputs:  []PortSpec{{Tag: "", Doc: "packets"}},
			Outputs: []PortSpec{{Tag: "", Doc: "at most one packet per interval"}},
		},
		Options: []OptionSpec{{Name: "interval", Type: OptDuration, Required: true, Doc: "minimum media time between packets"}},
	})
	Register(Spec{
		Name: "PreviousLoopback",
		Doc: "PreviousLoopback closes a loop: for each MAIN packet it emits, on PREV_LOOP and at the MAIN " +
			"timestamp, the LOOP packet that came back for the previous MAIN packet (only a bound for the " +
			"first one, so the loop does not wait on itself). Mark LOOP as a back edge.",
		New: func() Calculator {
			return &previousLoopback{prevMain: Unstarted, prevNonEmpty: Unstarted, prevLoop: Unset}
		},
		Contract: Contract{
			Inputs: []PortSpec{
				{Tag: "MAIN", Doc: "timestamps to answer"},
				{Tag: "LOOP", Doc: "the loop's output, as a back edge"},
			},
			Outputs:                []PortSpec{{Tag: "PREV_LOOP", Doc: "previous LOOP packet at the current MAIN timestamp"}},
			InputStreamHandler:     HandlerImmediate,
			ProcessTimestampBounds: true,
		},
	})
	Register(Spec{
		Name: "Sequence",
		Doc: "Sequence is a source: it emits count int64 values start, start+step, ... at timestamps " +
			"first_timestamp, first_timestamp+interval, ... and then stops. Handy for tests and benchmarks.",
		New: func() Calculator { return &sequence{} },
		Contract: Contract{
			Outputs: []PortSpec{{Tag: "", Type: reflect.TypeFor[int64](), Doc: "the values"}},
		},
		Options: []OptionSpec{
			{Name: "count", Type: OptInt, Default: 10, Doc: "how many packets"},
			{Name: "start", Type: OptInt, Default: 0, Doc: "first value"},
			{Name: "step", Type: OptInt, Default: 1, Doc: "value increment"},
			{Name: "first_timestamp", Type: OptInt, Default: 0, Doc: "timestamp of the first packet (µs)"},
			{Name: "interval", Type: OptInt, Default: 1, Doc: "timestamp increment (µs)"},
		},
	})
}

// mirroredContract accepts any ports as long as inputs and outputs pair up
// by TAG:index.
func mirroredContract(info NodeInfo) (Contract, error) {
	in := map[string]bool{}
	var tags []string
	for _, r := range info.Inputs {
		in[r.Key()] = true
		if !slices.Contains(tags, r.Tag) {
			tags = append(tags, r.Tag)
		}
	}
	if len(info.Inputs) == 0 {
		return Contract{}, errors.New("needs at least one input stream")
	}
	for _, r := range info.Outputs {
		if !in[r.Key()] {
			return Contract{}, fmt.Errorf("output %s has no input %s to mirror", r, r.Key())
		}
		delete(in, r.Key())
	}
	for k := range in {
		return Contract{}, fmt.Errorf("input %s has no output %s", k, k)
	}
	var c Contract
	for _, t := range tags {
		c.Inputs = append(c.Inputs, PortSpec{Tag: t, Repeated: true})
		c.Outputs = append(c.Outputs, PortSpec{Tag: t, Repeated: true})
	}
	c.Stateless = true
	return c, nil
}

// passThrough pairs input i with output out[i] (same TAG:index), found
// once in Open rather than by port name on every call.
type passThrough struct{ out []int }

func (c *passThrough) Open(cc *CalculatorContext) error {
	c.out = make([]int, len(cc.n.inRefs))
	for i, r := range cc.n.inRefs {
		j, ok := portSlot(cc.n.outRefs, cc.n.outIndex, r.Tag, r.Index)
		if !ok {
			return fmt.Errorf("input %s has no output %s", r, r.Key())
		}
		c.out[i] = j
	}
	cc.SetTimestampOffset(0)
	return nil
}
func (*passThrough) Close(*CalculatorContext) error { return nil }
func (c *passThrough) Process(cc *CalculatorContext) error {
	for i, p := range cc.inputs {
		if !p.IsEmpty() {
			if err := cc.outputs[c.out[i]].AddPacket(p); err != nil {
				return err
			}
		}
	}
	return nil
}

type timestampShift struct{ offset int64 }

func (c *timestampShift) Open(cc *CalculatorContext) error {
	c.offset = cc.Options().Duration("offset").Microseconds()
	cc.SetTimestampOffset(c.offset)
	return nil
}
func (c *timestampShift) Close(*CalculatorContext) error { return nil }
func (c *timestampShift) Process(cc *CalculatorContext) error {
	p := cc.Input("")
	return cc.Output("").AddPacket(p.At(p.Timestamp().Add(c.offset)))
}

type counter struct{ n int64 }

func (c *counter) Open(cc *CalculatorContext) error { cc.SetTimestampOffset(0); return nil }
func (c *counter) Process(cc *CalculatorContext) error {
	c.n++
	if cc.OutputCount("") == 0 {
		return nil
	}
	return cc.Output("").Add(c.n, cc.InputTimestamp())
}
func (c *counter) Close(cc *CalculatorContext) error {
	if cc.GraphErr() != nil {
		return nil
	}
	for _, r := range cc.n.sideOut {
		if r.ref.Tag == "TOTAL" {
			return cc.SetOutputSidePacket("TOTAL", c.n)
		}
	}
	return nil
}

type gate struct{ allow bool }

func (c *gate) Open(cc *CalculatorContext) error {
	c.allow = cc.Options().Bool("allow")
	if v, ok := cc.InputSidePacket("ALLOW").(bool); ok {
		c.allow = v
	}
	cc.SetTimestampOffset(0)
	return nil
}
func (c *gate) Close(*CalculatorContext) error { return nil }
func (c *gate) Process(cc *CalculatorContext) error {
	if v, ok := As[bool](cc.Input("ALLOW")); ok {
		c.allow = v
	}
	if !c.allow {
		return nil
	}
	for i := 0; i < cc.InputCount(""); i++ {
		if p := cc.InputAt("", i); !p.IsEmpty() {
			if err := cc.OutputAt("", i).AddPacket(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// merge finds its inputs' slots, by index, once in Open.
type merge struct{ in []int }

func (c *merge) Open(cc *CalculatorContext) error {
	c.in = make([]int, cc.InputCount(""))
	for i := range c.in {
		j, ok := portSlot(cc.n.inRefs, cc.n.inIndex, "", i)
		if !ok {
			return fmt.Errorf("input :%d is not connected", i)
		}
		c.in[i] = j
	}
	cc.SetTimestampOffset(0)
	return nil
}

func (*merge) Close(*CalculatorContext) error { return nil }

func (c *merge) Process(cc *CalculatorContext) error {
	for _, j := range c.in {
		if p := cc.inputs[j]; !p.IsEmpty() {
			return cc.Output("").AddPacket(p)
		}
	}
	return nil
}

type throttle struct {
	interval int64
	last     Timestamp
	passed   bool
}

func (c *throttle) Open(cc *CalculatorContext) error {
	c.interval = cc.Options().Duration("interval").Microseconds()
	if c.interval <= 0 {
		return fmt.Errorf("option interval must be positive, got %v", cc.Options().Duration("interval"))
	}
	cc.SetTimestampOffset(0)
	return nil
}
func (c *throttle) Close(*CalculatorContext) error { return nil }
func (c *throttle) Process(cc *CalculatorContext) error {
	p := cc.Input("")
	if c.passed && p.Timestamp() < c.last.Add(c.interval) {
		return nil
	}
	c.last, c.passed = p.Timestamp(), true
	return cc.Output("").AddPacket(p)
}

// previousLoopback pairs MAIN timestamps with the LOOP packet of the
// previous MAIN packet, following MediaPipe's PreviousLoopbackCalculator.
type previousLoopback struct {
	Base
	mainSpecs    []loopSpec
	prevMain     Timestamp
	prevNonEmpty Timestamp
	loops        []Packet
	prevLoop     Timestamp
	// closed: every MAIN timestamp is answered and MAIN is done. Later
	// calls (the handler's end-of-MAIN call at Max, LOOP packets still
	// coming back) have nothing to answer; MediaPipe's outputs ignore a
	// bound set after Close, weir's fail the call, so they are not made.
	closed bool
}

type loopSpec struct{ ts, loopTS Timestamp }

func (c *previousLoopback) Process(cc *CalculatorContext) error {
	if c.closed {
		return nil
	}
	main := cc.Input("MAIN")
	if c.prevMain < main.Timestamp() {
		loopTS := Unset
		if !main.IsEmpty() {
			loopTS = c.prevNonEmpty
			c.prevNonEmpty = main.Timestamp()
		}
		c.mainSpecs = append(c.mainSpecs, loopSpec{ts: main.Timestamp(), loopTS: loopTS})
		c.prevMain = main.Timestamp()
	}
	loop := cc.Input("LOOP")
	if c.prevLoop < loop.Timestamp() {
		c.loops = append(c.loops, loop)
		c.prevLoop = loop.Timestamp()
	}
	out := cc.Output("PREV_LOOP")
	for len(c.mainSpecs) > 0 && len(c.loops) > 0 {
		m, l := c.mainSpecs[0], c.loops[0]
		switch {
		case m.loopTS < l.Timestamp():
			// No LOOP packet can answer this MAIN timestamp.
			if err := out.SetNextTimestampBound(m.ts.NextAllowedInStream()); err != nil {
				return err
			}
			c.mainSpecs = c.mainSpecs[1:]
		case m.loopTS > l.Timestamp():
			c.loops = c.loops[1:]
		default:
			var err error
			if l.IsEmpty() {
				err = out.SetNextTimestampBound(m.ts.NextAllowedInStream())
			} else {
				err = out.AddPacket(l.At(m.ts))
			}
			if err != nil {
				return err
			}
			c.loops, c.mainSpecs = c.loops[1:], c.mainSpecs[1:]
		}
	}
	if len(c.mainSpecs) == 0 && cc.InputDone("MAIN", 0) {
		out.Close()
		c.closed = true
	}
	return nil
}

type sequence struct {
	Base
	i, count, value, step int64
	ts                    Timestamp
	interval              int64
}

func (c *sequence) Open(cc *CalculatorContext) error {
	o := cc.Options()
	c.count, c.value, c.step = o.Int("count"), o.Int("start"), o.Int("step")
	c.ts, c.interval = Timestamp(o.Int("first_timestamp")), o.Int("interval")
	if c.interval <= 0 {
		return fmt.Errorf("interval must be positive, got %d", c.interval)
	}
	return nil
}

func (c *sequence) Process(cc *CalculatorContext) error {
	if c.i >= c.count {
		return ErrStop
	}
	if err := cc.Output("").Add(c.value, c.ts); err != nil {
		return err
	}
	c.i++
	c.value += c.step
	c.ts += Timestamp(c.interval)
	return nil
}
